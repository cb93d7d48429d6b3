"""The synthetic world: an endless, seeded video of a moving camera over a picture, with
textured sprites moving on their own paths, slow lighting changes, rare shake and rare
scene cuts, and the exact forward optical flow and occlusion mask between frames.

Every layer (the background and each sprite) is a picture seen through an affine map
`screen_from_local(t)` that is a closed-form function of time, so frame t can be rendered
directly and the flow of a pixel on layer L is exactly
`screen_from_local_L(t+1) @ inv(screen_from_local_L(t))` applied to it.

Units: "world" coordinates have the background's short side spanning [-1, 1]; "screen"
coordinates are pixels (centres at integers); "local" sprite coordinates span [-1, 1]^2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .motion import Shake, Wobble, affine, apply, rotation
from .pictures import picture, resize, split_of

ALPHA_EPS = 0.02  # coverage below this counts as "not there", above 1 - this as "solid"
SPRITE_TEXELS = 96


@dataclass(frozen=True)
class WorldConfig:
    size: tuple[int, int] = (128, 128)  # (height, width)
    sprites: tuple[int, int] = (2, 6)  # inclusive range of sprites per scene
    mean_scene_frames: float = 400.0  # cuts are rare: a new scene every ~16 s at 25 fps
    min_scene_frames: int = 50
    shake_rate: float = 1 / 300  # shake bursts per frame
    zoom: tuple[float, float] = (1.0, 1.8)  # the screen's short side shows 1/zoom world units
    lighting: float = 0.08  # amplitude of the slow per-channel gain drift
    lighting_period: tuple[float, float] = (300.0, 900.0)  # frames
    p_procedural: float = 0.3  # share of pictures that are procedural textures


def bilinear(tex: np.ndarray, x: np.ndarray, y: np.ndarray, reflect: bool) -> np.ndarray:
    """Sample tex (h, w, c) at float texel positions; outside the texture either mirror
    (backgrounds extend forever) or clamp (sprites, whose outside is masked anyway)."""
    h, w = tex.shape[:2]
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)

    def fold(i: np.ndarray, n: int) -> np.ndarray:
        if not reflect:
            return np.clip(i, 0, n - 1)
        period = 2 * (n - 1)
        i = np.mod(i, period)
        return np.where(i > n - 1, period - i, i)

    xa, xb, ya, yb = fold(x0, w), fold(x0 + 1, w), fold(y0, h), fold(y0 + 1, h)
    top = tex[ya, xa] * (1 - fx) + tex[ya, xb] * fx
    bottom = tex[yb, xa] * (1 - fx) + tex[yb, xb] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


@dataclass(frozen=True)
class Shape:
    """A sprite outline in local coordinates: a radial-harmonic blob/star, or a superellipse."""

    harmonics: tuple[tuple[int, float, float], ...] = ()  # (k, amplitude, phase)
    power: float = 0.0  # > 0: superellipse |x|^p + |y|^p <= r^p

    @staticmethod
    def random(rng: np.random.Generator) -> "Shape":
        kind = rng.integers(3)
        if kind == 0:  # rounded rectangle
            return Shape(power=float(rng.uniform(3, 8)))
        if kind == 1:  # star
            k = int(rng.integers(4, 8))
            return Shape(((k, float(rng.uniform(0.25, 0.4)), float(rng.uniform(0, 6.3))),))
        ks = rng.choice(np.arange(2, 6), size=2, replace=False)  # blob
        return Shape(tuple((int(k), float(rng.uniform(0.05, 0.15)), float(rng.uniform(0, 6.3))) for k in ks))

    def signed_distance(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Approximate signed distance (local units), negative inside; the shape fits in
        the unit square so the texture covers it."""
        if self.power > 0:
            p = self.power
            return (np.abs(u) ** p + np.abs(v) ** p) ** (1 / p) - 0.95
        rho, phi = np.hypot(u, v), np.arctan2(v, u)
        radius = np.ones_like(rho)
        for k, a, ph in self.harmonics:
            radius += a * np.cos(k * phi + ph)
        return rho - radius * 0.95 / (1 + sum(abs(a) for _, a, _ in self.harmonics))


@dataclass(frozen=True)
class Sprite:
    texture: np.ndarray  # (SPRITE_TEXELS, SPRITE_TEXELS, 3)
    shape: Shape
    x: Wobble
    y: Wobble
    angle: Wobble
    log_scale: Wobble  # radius in world units, log
    aspect: float
    follow: float  # share of the camera's pan the sprite shares, so it tends to stay in view

    def world_from_local(self, t: float, camera_pan: tuple[float, float]) -> np.ndarray:
        r = np.exp(self.log_scale(t))
        linear = rotation(self.angle(t)) @ np.diag([r, r * self.aspect])
        x = self.x(t) + self.follow * camera_pan[0]
        y = self.y(t) + self.follow * camera_pan[1]
        return affine(linear, (x, y))


class Scene:
    """One shot between two cuts: a camera path over a background, and its sprites."""

    def __init__(self, rng: np.random.Generator, split: str, cfg: WorldConfig, length: int):
        h, w = cfg.size
        self.short = min(h, w)
        self.centre = ((w - 1) / 2, (h - 1) / 2)
        zoom0 = float(rng.uniform(*cfg.zoom))
        # Camera: world point (cam_x, cam_y) at the screen centre; zoom z shows 1/z world
        # units across the screen's short side, so `short * zoom0` texels per world unit
        # give about one texel per pixel (sharp, yet no aliasing).
        self.cam_x = Wobble.random(rng, rng.uniform(-0.3, 0.3), 0.4, (0.004, 0.02))
        self.cam_y = Wobble.random(rng, rng.uniform(-0.3, 0.3), 0.4, (0.004, 0.02))
        self.cam_angle = Wobble.random(rng, rng.uniform(-0.2, 0.2), 0.25, (0.003, 0.015))
        self.cam_log_zoom = Wobble.random(rng, np.log(zoom0), 0.3, (0.004, 0.02))
        self.shake = Shake.random(rng, length, cfg.shake_rate)

        texels = self.short * zoom0
        pic = picture(rng, split, cfg.p_procedural)
        ph, pw = pic.shape[:2]
        scale = 2 * texels / min(ph, pw)
        self.background = resize(pic, max(2, round(ph * scale)), max(2, round(pw * scale)))
        bh, bw = self.background.shape[:2]
        self.texel_from_world = affine(np.eye(2) * texels, ((bw - 1) / 2, (bh - 1) / 2))

        self.sprites = []
        for _ in range(int(rng.integers(cfg.sprites[0], cfg.sprites[1] + 1))):
            tex = resize(picture(rng, split, cfg.p_procedural), SPRITE_TEXELS, SPRITE_TEXELS)
            tex = tex * rng.uniform(0.7, 1.3) + rng.uniform(-0.1, 0.1)  # differ from the background
            self.sprites.append(Sprite(
                texture=np.clip(tex, 0, 1).astype(np.float32),
                shape=Shape.random(rng),
                x=Wobble.random(rng, self.cam_x.base + rng.uniform(-0.25, 0.25), 0.4, (0.01, 0.05)),
                y=Wobble.random(rng, self.cam_y.base + rng.uniform(-0.25, 0.25), 0.4, (0.01, 0.05)),
                angle=Wobble.random(rng, rng.uniform(0, 2 * np.pi), 0.5, (0.01, 0.04),
                                    rate=float(rng.uniform(-0.03, 0.03))),
                log_scale=Wobble.random(rng, np.log(rng.uniform(0.08, 0.25)), 0.3, (0.01, 0.04)),
                aspect=float(np.exp(rng.uniform(-0.4, 0.4))),
                follow=float(rng.uniform(0.5, 1.0)),
            ))

    def screen_from_world(self, t: float) -> np.ndarray:
        z = np.exp(self.cam_log_zoom(t))
        to_cam = rotation(self.cam_angle(t)).T * z
        sx, sy = self.shake(t)
        cam = affine(to_cam, -to_cam @ np.array([self.cam_x(t), self.cam_y(t)]) + (sx, sy))
        return affine(np.eye(2) * self.short, self.centre) @ cam

    def screen_from_layer(self, t: float) -> list[np.ndarray]:
        """Layer 0 is the background (its local frame is the world), 1.. the sprites."""
        cam = self.screen_from_world(t)
        pan = (self.cam_x(t) - self.cam_x.base, self.cam_y(t) - self.cam_y.base)
        return [cam] + [cam @ s.world_from_local(t, pan) for s in self.sprites]


def _pixel_scale(m: np.ndarray) -> float:
    """Screen pixels per local unit of an affine map (geometric mean of its axes)."""
    return float(np.sqrt(abs(np.linalg.det(m[:2, :2]))))


@dataclass
class WorldFrame:
    t: int
    image: np.ndarray  # (H, W, 3) float32 in [0, 1]
    layers: np.ndarray  # (H, W) int: 0 background, k sprite k (the top one covering the pixel)
    coverage: np.ndarray  # (n_sprites, H, W) float32 alpha of each sprite
    background_visible: np.ndarray  # (H, W) product of (1 - alpha): how much background shows
    screen_from_layer: list[np.ndarray]  # 3x3 per layer, background first
    scene: int
    cut: bool  # first frame of a new scene (not of the stream)

    @property
    def screen_from_world(self) -> np.ndarray:
        """Where world (background) points land on screen."""
        return self.screen_from_layer[0]


class World:
    """An endless synthetic video; `frame(t)` renders any frame, `flow(t)` maps t to t+1."""

    def __init__(self, seed: int, config: WorldConfig | None = None):
        self.seed = int(seed)
        self.config = config or WorldConfig()
        self.split = split_of(self.seed)
        self._scene_starts = [0]
        self._scene_cache: tuple[int, Scene] | None = None
        self._cut_rng = np.random.default_rng([self.seed, 0])
        light_rng = np.random.default_rng([self.seed, 1])
        lo, hi = self.config.lighting_period
        self._light_freq = 2 * np.pi / light_rng.uniform(lo, hi, 3)
        self._light_phase = light_rng.uniform(0, 2 * np.pi, 3)
        h, w = self.config.size
        ys, xs = np.mgrid[0:h, 0:w]
        self._xs, self._ys = xs.astype(np.float64), ys.astype(np.float64)

    # --- time line ----------------------------------------------------------------------
    def _extend_timeline(self, until: int) -> None:
        """Draw scene lengths until a scene starts after frame `until`."""
        cfg = self.config
        while self._scene_starts[-1] <= until:
            extra = self._cut_rng.exponential(cfg.mean_scene_frames - cfg.min_scene_frames)
            self._scene_starts.append(self._scene_starts[-1] + cfg.min_scene_frames + int(extra))

    def _scene_bounds(self, t: int) -> tuple[int, int, int]:
        """(scene index, start, length) of the scene that shows frame t."""
        if t < 0:
            raise ValueError(f"frame index must be >= 0, not {t}")
        self._extend_timeline(t)
        k = int(np.searchsorted(self._scene_starts, t, side="right")) - 1
        return k, self._scene_starts[k], self._scene_starts[k + 1] - self._scene_starts[k]

    def scene(self, k: int) -> Scene:
        """Scene k, built once and kept while it is the one being rendered."""
        if self._scene_cache is None or self._scene_cache[0] != k:
            while len(self._scene_starts) <= k + 1:
                self._extend_timeline(self._scene_starts[-1])
            length = self._scene_starts[k + 1] - self._scene_starts[k]
            rng = np.random.default_rng([self.seed, 2, k])
            self._scene_cache = (k, Scene(rng, self.split, self.config, length))
        return self._scene_cache[1]

    def lighting(self, t: int) -> np.ndarray:
        return 1 + self.config.lighting * np.sin(self._light_freq * t + self._light_phase)

    # --- rendering ----------------------------------------------------------------------
    def _coverage(self, sprite: Sprite, screen_from_local: np.ndarray, x: np.ndarray,
                  y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Anti-aliased alpha of a sprite at screen points, and their local coordinates."""
        u, v = apply(np.linalg.inv(screen_from_local), x, y)
        d = sprite.shape.signed_distance(u, v) * _pixel_scale(screen_from_local)
        return np.clip(0.5 - d, 0.0, 1.0).astype(np.float32), u, v

    def frame(self, t: int) -> WorldFrame:
        k, start, _ = self._scene_bounds(t)
        scene, tau = self.scene(k), t - start
        mats = scene.screen_from_layer(tau)
        h, w = self.config.size

        bg_texel = scene.texel_from_world @ np.linalg.inv(mats[0])
        image = bilinear(scene.background, *apply(bg_texel, self._xs, self._ys), reflect=True)
        layers = np.zeros((h, w), np.int64)
        coverage = np.zeros((len(scene.sprites), h, w), np.float32)
        for i, (sprite, m) in enumerate(zip(scene.sprites, mats[1:])):
            box = _screen_box(m, h, w)
            if box is None:
                continue
            sl = (slice(box[0], box[1]), slice(box[2], box[3]))
            alpha, u, v = self._coverage(sprite, m, self._xs[sl], self._ys[sl])
            texel = (SPRITE_TEXELS - 1) / 2
            colour = bilinear(sprite.texture, (u + 1) * texel, (v + 1) * texel, reflect=False)
            a = alpha[..., None]
            image[sl] = image[sl] * (1 - a) + colour * a
            coverage[i][sl] = alpha
            layers[sl][alpha >= 0.5] = i + 1
        image = np.clip(image * self.lighting(t).astype(np.float32), 0.0, 1.0)
        return WorldFrame(
            t=t, image=image, layers=layers, coverage=coverage,
            background_visible=np.prod(1 - coverage, axis=0),
            screen_from_layer=mats, scene=k, cut=(tau == 0 and k > 0),
        )

    def flow(self, t: int, frame: WorldFrame | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Exact forward flow (H, W, 2) float32 (dx, dy) from frame t to t+1, and the
        occlusion mask (H, W) bool: True where the pixel at t has no clean match at t+1
        (leaves the screen, gets covered, is an anti-aliased edge, or a cut follows)."""
        frame = frame if frame is not None else self.frame(t)
        h, w = self.config.size
        k, start, length = self._scene_bounds(t)
        if t + 1 - start >= length:  # a cut follows: nothing carries over
            return np.zeros((h, w, 2), np.float32), np.ones((h, w), bool)
        scene = self.scene(k)
        now, nxt = frame.screen_from_layer, scene.screen_from_layer(t + 1 - start)

        x1, y1 = np.empty((h, w)), np.empty((h, w))
        for layer, (a, b) in enumerate(zip(now, nxt)):
            sel = frame.layers == layer
            if sel.any():
                x1[sel], y1[sel] = apply(b @ np.linalg.inv(a), self._xs[sel], self._ys[sel])
        flow = np.stack([x1 - self._xs, y1 - self._ys], axis=2).astype(np.float32)

        # Coverage of every sprite at t+1 where each pixel lands.
        n = len(scene.sprites)
        landed = np.stack([self._coverage(s, m, x1, y1)[0] for s, m in zip(scene.sprites, nxt[1:])]) \
            if n else np.zeros((0, h, w), np.float32)
        # above[l] = strongest coverage, at t+1, by any sprite stacked above layer l
        above = np.zeros((n + 1, h, w), np.float32)
        for layer in range(n - 1, -1, -1):
            above[layer] = np.maximum(above[layer + 1], landed[layer])
        lay = frame.layers[None]
        covered = np.take_along_axis(above, lay, 0)[0] > ALPHA_EPS
        own = np.take_along_axis(np.concatenate([np.ones((1, h, w), np.float32), landed]), lay, 0)[0]
        mixed_now = ((frame.coverage > ALPHA_EPS) & (frame.coverage < 1 - ALPHA_EPS)).any(axis=0)
        outside = (x1 < 0) | (x1 > w - 1) | (y1 < 0) | (y1 > h - 1)
        occluded = covered | (own < 1 - ALPHA_EPS) | mixed_now | outside
        return flow, occluded


def _screen_box(m: np.ndarray, h: int, w: int) -> tuple[int, int, int, int] | None:
    """Pixel rows/cols (y0, y1, x0, x1) that a sprite's unit square can touch, or None."""
    x, y = apply(m, np.array([-1.0, 1.0, 1.0, -1.0]), np.array([-1.0, -1.0, 1.0, 1.0]))
    x0, x1 = max(int(np.floor(x.min())) - 1, 0), min(int(np.ceil(x.max())) + 2, w)
    y0, y1 = max(int(np.floor(y.min())) - 1, 0), min(int(np.ceil(y.max())) + 2, h)
    return (y0, y1, x0, x1) if x0 < x1 and y0 < y1 else None
