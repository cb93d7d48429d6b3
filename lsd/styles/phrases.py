"""More ways to name each look than its training prompts: synonyms, descriptions, Chinese,
medium and colour words, put into the templates people type ("make it look like ...") and
roughened (dropped words, typos, punctuation); and prompts for looks LSD does not have.
`lsd prompts` teaches a model's prompt reader (lsd.models.prompt_reader) to tell them apart.
"""

from __future__ import annotations

import random

from . import STYLES

BANK = {
 "ink_wash": ["ink painting", "brush and ink", "Chinese brush painting", "shan shui landscape painting",
   "black ink wash", "sumi ink art", "calligraphy brush style", "ink on paper", "monochrome ink art",
   "Japanese ink art", "grey ink washes on paper", "traditional East Asian painting", "水墨", "国画", "墨水画", "水墨山水"],
 "thermal": ["thermal imaging", "infrared camera", "heat vision", "thermographic camera", "FLIR camera",
   "heat signature view", "predator vision", "infrared image", "temperature map colours", "hot and cold colours",
   "thermal scan", "heat sensor view", "热成像仪", "红外线", "热感应", "红外摄像头"],
 "pencil_sketch": ["pencil drawing", "graphite sketch", "sketchbook drawing", "line drawing", "hand drawn lines",
   "charcoal sketch", "drawn with a pencil", "rough sketch", "grey pencil lines on white", "architect's sketch",
   "black and white drawing", "doodle on paper", "素描", "铅笔画", "手绘线稿", "速写"],
 "retro_palette": ["pixel art", "8 bit", "retro video game", "old console graphics", "NES palette",
   "limited colour palette", "arcade game look", "16 bit game", "game boy colours", "chiptune era graphics",
   "few flat colours", "retro computer graphics", "像素风", "复古游戏", "八位游戏", "像素画"],
 "cartoon": ["cartoon style", "animated movie", "anime", "cel shading", "toon shading",
   "bold outlines and flat colours", "animation still", "comic strip",
   "drawn like a cartoon", "kids cartoon", "卡通风格", "动画", "漫画", "动漫"],
 "cyberpunk_neon": ["cyberpunk", "neon lights", "neon glow", "synthwave", "vaporwave city",
   "futuristic neon city", "pink and cyan neon", "retro futurism neon", "night city neon signs",
   "glowing neon colours", "sci-fi neon", "赛博朋克", "霓虹", "霓虹灯", "未来都市"],
 "night_vision": ["night vision camera", "night goggles", "green night vision", "infrared night camera",
   "NVG view", "low light green scope", "green phosphor image",
   "seeing in the dark", "surveillance night camera", "green grainy night image", "夜视", "夜视镜", "夜视摄像", "绿色夜视"],
 "sepia": ["sepia", "old photo", "vintage photograph", "brown tinted photo", "antique picture", "aged photograph",
   "faded old picture", "old-timey photo", "daguerreotype", "nostalgic brown tones",
   "photo from grandma's album", "老照片", "怀旧照片", "复古照片", "泛黄的照片"],
 "pop_art": ["pop art", "Andy Warhol", "Warhol style", "Lichtenstein style", "pop art poster", "bold pop colours",
   "screen print poster", "波普", "波普风格", "安迪沃霍尔"],
 "star_glitter": ["glitter", "sparkles", "twinkling stars", "sparkly stars", "stars and glitter", "星星", "闪光", "闪闪发光"],
 "long_exposure": ["long exposure", "light trails", "motion blur trails", "slow shutter photo", "streaks of light",
   "ghostly trails", "长时间曝光", "光轨", "拖影"],
}
# things people ask for that are no look LSD has: subjects, scenes, other media and edits
ELSEWHERE = ["impressionist painting", "monet water lilies", "picasso", "cubism", "surrealism",
  "renaissance fresco", "baroque", "ukiyo-e woodblock print", "art nouveau", "minimalism", "steampunk",
  "vector illustration", "blueprint", "chalkboard drawing", "crayon drawing", "paper cutout",
  "felt puppets", "glass sculpture", "golden statue", "wooden carving", "ice sculpture", "marble statue",
  "origami", "embroidery", "graffiti wall", "lego bricks", "tie dye", "rainbow", "kaleidoscope",
  "fisheye lens", "tilt shift", "glitch art", "ascii art", "matrix code rain", "hologram",
  "microscope view", "satellite view", "a map", "fire and flames", "fog", "smoke", "snow falling",
  "a rainy day", "a beach at sunset", "a forest", "desert sand", "winter wonderland", "the moon",
  "space nebula", "a jungle", "a medieval castle", "city skyline", "zombie apocalypse", "a cat",
  "cats and dogs", "a horse", "portrait photo", "passport photo", "selfie", "hdr photo",
  "studio lighting", "make it sharper", "make it brighter", "denoise", "super resolution",
  "colorize", "mirror image", "upside down", "zoom in", "make me taller", "hello", "test", "asdf",
  "what is this", "梵高", "毕加索", "森林", "下雪", "猫", "乐高", "雕塑", "剪纸", "刺绣", "火焰",
  "彩虹", "你好", "沙漠", "月亮", "城市夜景", "印象派",
  "acrylic painting", "gouache", "pastel drawing", "tempera", "airbrush", "spray paint", "pointillism",
  "expressionism", "abstract art", "pixar 3d", "wax museum", "bronze",
  "chrome metal", "porcelain", "neon sign of a cat", "tattoo", "henna pattern", "denim",
  "leather", "cardboard", "sand art", "snow globe", "bubble bath",
  "volcano", "thunderstorm", "autumn leaves", "cherry blossoms", "tropical island", "north pole",
  "robot", "alien", "vampire", "ghost", "superhero", "princess", "dinosaur", "teddy bear", "a car",
  "a spaceship", "make it move faster", "slow motion", "remove the background", "blur my face",
  "add a hat", "turn me into a cat", "old man", "baby face", "mri scan", "ultrasound",
  "weather map", "heat wave", "a pizza", "sushi", "雨天", "秋天", "樱花", "机器人", "恐龙",
  "外星人", "鬼", "超级英雄", "披萨", "抽象画", "素食", "宇宙", "星系"]
# words people put after a look's name ("ocean colours"). A look taught by `lsd learn` has
# only its name and prompts to be read by, and a word another look's bank has ("game boy
# colours") pulled "ocean colours" there; said half the time with one of these, its own
# name carries it.
LOOK_WORDS = ["colours", "colors", "look", "effect", "filter", "tones", "palette", "grade", "mode",
  "preset", "theme", "aesthetic", "style", "art"]
TEMPLATES = ["{}", "{}", "make it look like {}", "in the style of {}", "{} style", "{} filter", "like {}",
  "as {}", "turn it into {}", "a {} look", "{}, please", "make it {}", "give it a {} look", "render as {}",
  "我想要{}", "{}风格", "变成{}", "{}效果"]


def _typo(word: str, rng: random.Random) -> str:
    """One slip: two letters swapped, one dropped or one doubled."""
    if len(word) < 4:
        return word
    i = rng.randrange(len(word) - 1)
    return [word[:i] + word[i + 1] + word[i] + word[i + 2:], word[:i] + word[i + 1:],
            word[:i] + word[i] + word[i:]][rng.randrange(3)]


def paraphrase(look: str | None, rng: random.Random, prompts: list[str] | None = None) -> str:
    """A way a person might ask for `look` (None: for something that is no look); `prompts`:
    the look's own prompts (default: its style's; a look taught by `lsd learn` has no style)."""
    names = ELSEWHERE if look is None else BANK.get(look, []) + list(prompts or STYLES[look].prompts)
    if look is not None and look not in STYLES and rng.random() < 0.5:  # a taught look
        names = [f"{name} {rng.choice(LOOK_WORDS)}" for name in names]
    text = rng.choice(TEMPLATES).format(rng.choice(names))
    if rng.random() < 0.25:
        text += rng.choice(["!", "!!!", ".", "...", "?", " :)"])
    words = text.split()
    if rng.random() < 0.2 and len(words) > 2:
        words.pop(rng.randrange(len(words)))
    if rng.random() < 0.2 and words:
        j = rng.randrange(len(words))
        words[j] = _typo(words[j], rng)
    return " ".join(words)
