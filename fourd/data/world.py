"""Procedural 4D world: ray-cast rooms with moving objects, with exact ground truth for the 4D probes.

A clip is a closed, textured room (floor, ceiling, four walls) holding ``num_objects`` textured boxes and
spheres that move and spin about the vertical, filmed by a pinhole camera whose dominant motion is the
clip's class. Frames are rendered by exact ray casting, so depth, cameras, point tracks with occlusion and
object boxes are exact.

Conventions
- World: metres, y up, the floor is y = 0.
- Camera (OpenCV): x right, y down, z forward; ``world_to_camera`` maps world to camera coordinates.
- Pixels: x right, y down; pixel (column i, row j) covers [i, i + 1) x [j, j + 1), so its centre is
  (i + 0.5, j + 0.5). A camera point (X, Y, Z) projects to (fx X / Z + cx, fy Y / Z + cy), with
  cx = cy = size / 2, and lies in pixel (floor(x), floor(y)). Depth and object ids are those of the ray
  through the pixel centre; colour averages a 2 x 2 grid of rays inside the pixel.
- Depth is z in camera coordinates (not ray length) and positive everywhere: the room is closed.
- Points are attached to a room face or an object. A point is occluded iff it is behind the camera, outside
  the image, on a surface facing away, or the ray through its exact projection hits something nearer than
  its z-depth (tolerance 1e-3 z + 1e-4 m). Tracks of points behind the camera are finite but meaningless.
- Boxes enclose the whole projected object (box corners, exact sphere silhouettes), clipped to the image;
  an object is visible iff it is the nearest surface at one pixel centre or more.
- Time: motions are defined over the whole clip, so more frames sample the same motion more finely.
- Labels (dominant camera motion): 0 left, 1 right, 2 forward, 3 backward, 4 orbit (rotating about a point).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from fourd.data.sampler import item_seed
from fourd.data.synthetic import random_oscillation, random_uniform
from fourd.errors import ConfigError, FourdError
from fourd.files import atomic_write, content_key, file_lock

MOTIONS = ("left", "right", "forward", "backward", "orbit")
NUM_CLASSES = len(MOTIONS)
DEFAULT_SPLITS = MappingProxyType({"train": 512, "val": 64, "test": 128})
SPLIT_OFFSETS = MappingProxyType({"train": 0, "val": 1_000_000, "test": 2_000_000})  # disjoint scenes
WORLD_MARKER = ".fourd_world"  # written first: the folder is a world being generated
KEYS = ("video", "depth", "intrinsics", "world_to_camera", "tracks", "occluded", "boxes", "box_visible", "label")

ROOM_FACES = 6  # surfaces 0-5: faces 2a and 2a + 1 are the low and high walls along axis a; 6 + o: object o
WAVES = 4  # two blended sinusoids and the two factors of a checker pattern
AMBIENT = 0.45  # share of light that does not depend on the surface orientation
NEAR = 0.01  # metres: points closer to the camera plane are behind it; their tracks use z = NEAR
CLEARANCE = 0.3  # metres: every object stays at least this far in front of the camera plane
MAX_ATTEMPTS = 100  # scene draws until objects and camera fit the room
RAYS_PER_CHUNK = 1 << 18  # bounds the memory of one ray-casting batch
SUBPIXELS = (0.25, 0.75)  # 2 x 2 anti-aliasing grid inside each pixel


@dataclass
class WorldConfig:
    """Size of the clips of a 4D world; clip ``i`` depends only on ``(seed, i)``."""

    num_frames: int = 8
    size: int = 64
    num_points: int = 32  # as the probes' world (fourd/conf/probe_data/world.yaml)
    num_objects: int = 3
    seed: int = 0


@dataclass
class _Scene:
    """Geometry (float64), appearance and camera of one clip."""

    label: int
    room: torch.Tensor  # (2, 3) low and high corner
    spheres: torch.Tensor  # (O,) bool, the others are boxes
    half: torch.Tensor  # (O, 3) half extents in the object frame; a sphere's radius thrice
    centres: torch.Tensor  # (T, O, 3)
    yaws: torch.Tensor  # (T, O) rotation about the vertical, object to world
    intrinsics: torch.Tensor  # (3, 3), float32 values
    world_to_camera: torch.Tensor  # (T, 4, 4), float32 values
    camera_to_world: torch.Tensor  # (T, 4, 4), its exact inverse
    waves: torch.Tensor  # (S, WAVES, 3) texture wave vectors in cycles per metre, S = ROOM_FACES + O
    phases: torch.Tensor  # (S, WAVES)
    colours: torch.Tensor  # (S, 3, 3) three colours per surface
    checker: torch.Tensor  # (S,) weight of the checker pattern
    light: torch.Tensor  # (3,) unit direction towards the light

    @property
    def num_objects(self) -> int:
        return len(self.spheres)


class _Placement(NamedTuple):
    """Objects start ``near``-``far`` metres ahead of ``anchor`` along ``forward``, within 1.3 m sideways."""

    anchor: torch.Tensor
    forward: torch.Tensor
    right: torch.Tensor
    near: float
    far: float


def render_world_clip(config: WorldConfig, index: int, return_geometry: bool = False) -> dict[str, np.ndarray | int]:
    """Render clip ``index`` with its ground truth (see the module docstring for conventions).

    Keys: video uint8 (T, H, W, 3); depth float32 (T, H, W); intrinsics float32 (T, 3, 3);
    world_to_camera float32 (T, 4, 4); tracks float32 (P, T, 2) pixel (x, y); occluded bool (P, T);
    boxes float32 (O, T, 4) x0, y0, x1, y1 clipped to the image; box_visible bool (O, T); label int.
    ``return_geometry`` adds points_world float64 (P, T, 3), point_object int64 (P,) (-1: room) and
    object_id int16 (T, H, W) (-1: room).
    """
    generator = _generator(config.seed, index)
    scene = _sample_scene(generator, config)
    video, depth, surface = _render(scene, config.size)
    surfaces, local = _sample_points(generator, scene, surface, config.num_points)
    world = _track_points(scene, surfaces, local)
    tracks, occluded = _observe_points(scene, surfaces, local, world, config.size)
    frames = config.num_frames
    clip = {
        "video": video.numpy(),
        "depth": depth.numpy(),
        "intrinsics": scene.intrinsics.float().expand(frames, 3, 3).numpy().copy(),
        "world_to_camera": scene.world_to_camera.float().numpy(),
        "tracks": tracks.transpose(0, 1).float().numpy(),
        "occluded": occluded.T.numpy().copy(),
        "boxes": _object_boxes(scene, config.size).float().numpy(),
        "box_visible": _object_visibility(surface, scene.num_objects).numpy(),
        "label": scene.label,
    }
    if return_geometry:
        clip["points_world"] = world.transpose(0, 1).numpy().copy()
        clip["point_object"] = (surfaces - ROOM_FACES).clamp(min=-1).numpy()
        clip["object_id"] = (surface - ROOM_FACES).clamp(min=-1).to(torch.int16).numpy()
    return clip


def is_world(folder: Path) -> bool:
    """A folder generate_world made (its world.json, or the marker of a generation not yet finished)."""
    return (folder / "world.json").is_file() or (folder / WORLD_MARKER).is_file()


def generate_world(
    root: str | Path,
    config: WorldConfig,
    splits: Mapping[str, int] = DEFAULT_SPLITS,
    progress: bool = True,
) -> Path:
    """Write ``root/<split>/<index:06d>.npz`` per clip and ``root/world.json``; a complete world is kept.

    Splits draw scenes from disjoint index ranges (``SPLIT_OFFSETS``). Clips already written for the same
    config are kept, so a world grows or resumes without rendering them again; another config rewrites
    all. Files are written atomically, world.json last.
    """
    root = Path(root)
    negative = {split: count for split, count in splits.items() if count < 0}
    if negative or splits.get("train", 1) < 1:
        raise ConfigError(f"a world needs at least 1 train clip and no negative split: got {dict(splits)}")
    unknown = set(splits) - set(SPLIT_OFFSETS)
    if unknown:
        raise ConfigError(f"unknown splits {sorted(unknown)}; known: {list(SPLIT_OFFSETS)}")
    meta = {"config": asdict(config), "splits": dict(splits)}
    manifest = root / "world.json"
    previous = read_manifest(manifest)  # None where missing or unreadable: rendered again
    if previous == meta and all(
        (root / split / f"{index:06d}.npz").is_file() for split, count in splits.items() for index in range(count)
    ):
        return root
    keep = previous is not None and previous.get("config") == meta["config"]
    root.mkdir(parents=True, exist_ok=True)
    (root / WORLD_MARKER).touch()  # ours while unfinished too: a killed generation resumes into it
    if not keep:
        manifest.unlink(missing_ok=True)  # the clips on disk are no longer described by it
    for split, count in splits.items():
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        for index in tqdm(range(count), desc=f"4D world {split}", disable=not progress):
            path = folder / f"{index:06d}.npz"
            if not (keep and path.is_file()):
                _save_clip(path, render_world_clip(config, SPLIT_OFFSETS[split] + index))
    atomic_write(manifest, lambda tmp: tmp.write_text(json.dumps(meta, indent=2)))
    return root


def read_manifest(path: Path) -> dict[str, Any] | None:
    """A world's world.json, or None where it is missing or does not read as a JSON object."""
    try:
        described = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return described if isinstance(described, dict) else None


def world_split(
    root: str | Path, split: str, world: Mapping[str, Any], splits: Mapping[str, int] = DEFAULT_SPLITS
) -> WorldDataset:
    """One split of the 4D world with settings `world` (WorldConfig fields) in its own folder under `root`,
    generated first if missing or stale."""
    config = WorldConfig(**world)
    folder = Path(root) / f"world_{content_key(**asdict(config))}"
    with file_lock(folder.with_name(f".{folder.name}.lock")):  # runs sharing a cache generate it once
        return WorldDataset(generate_world(folder, config, dict(splits)), split)


class WorldDataset(Dataset):
    """Clips of a generated 4D world as torch tensors; video is uint8 (C, T, H, W)."""

    num_classes = NUM_CLASSES

    def __init__(self, root: str | Path, split: str) -> None:
        self.root = Path(root)
        self.split = split
        manifest = self.root / "world.json"
        hint = f"run `python -m fourd.world --out {self.root}`"
        if not manifest.is_file():
            raise FileNotFoundError(f"no 4D world at {self.root} (missing {manifest}): {hint}")
        described = read_manifest(manifest)
        if described is None or not isinstance(described.get("splits"), dict):
            raise FourdError(f"{manifest} is not a 4D world's description (damaged?): {hint} again to mend it")
        splits = described["splits"]
        if split not in splits or not (self.root / split).is_dir():
            raise FileNotFoundError(f"4D world {self.root} has no split {split!r} (has {list(splits)}): {hint}")
        self.num_clips = splits[split]

    def __len__(self) -> int:
        return self.num_clips

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        if not 0 <= index < self.num_clips:
            raise IndexError(f"clip {index} out of range for {self.num_clips} clips")
        with np.load(self.root / self.split / f"{index:06d}.npz") as data:
            item = {key: torch.from_numpy(data[key]) for key in KEYS}
        item["video"] = item["video"].permute(3, 0, 1, 2).contiguous()
        item["label"] = item["label"].to(torch.int64)
        item["skipped"] = 0
        return item


def _save_clip(path: Path, clip: dict[str, np.ndarray | int]) -> None:
    arrays = {key: np.asarray(clip[key]) for key in KEYS}
    arrays["label"] = arrays["label"].astype(np.int64)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as file:  # a file object: numpy would add .npz to the temporary's name
            np.savez_compressed(file, **arrays)

    atomic_write(path, write)


def _generator(seed: int, index: int) -> torch.Generator:
    return torch.Generator().manual_seed(item_seed(seed, index))


# ----------------------------------------------------------------------------------------------- scene


def _sample_scene(generator: torch.Generator, config: WorldConfig) -> _Scene:
    """Draw room, camera path and objects until everything fits, then the textures and the light."""
    times = torch.linspace(0.0, 1.0, config.num_frames, dtype=torch.float64)
    label = int(torch.randint(NUM_CLASSES, (), generator=generator))
    intrinsics = _sample_intrinsics(generator, config.size)
    for _ in range(MAX_ATTEMPTS):
        room = _sample_room(generator)
        eyes, targets, placement = _sample_camera(generator, label, times)
        world_to_camera = _look_at(eyes, targets).float().double()  # the stored float32 camera, used exactly
        spheres, half, centres, yaws = _sample_objects(generator, config.num_objects, placement, times)
        if _fits(room, world_to_camera, spheres, half, centres):
            break
    else:
        raise RuntimeError(f"no scene fits after {MAX_ATTEMPTS} attempts")
    waves, phases, colours, checker = _sample_textures(generator, config.num_objects)
    light = random_uniform(generator, (3,)).double() * torch.tensor([2.0, 1.0, 2.0]) + torch.tensor([-1.0, 1.0, -1.0])
    return _Scene(
        label=label,
        room=room,
        spheres=spheres,
        half=half,
        centres=centres,
        yaws=yaws,
        intrinsics=intrinsics,
        world_to_camera=world_to_camera,
        camera_to_world=torch.linalg.inv(world_to_camera),
        waves=waves,
        phases=phases,
        colours=colours,
        checker=checker,
        light=_normalise(light),
    )


def _sample_intrinsics(generator: torch.Generator, size: int) -> torch.Tensor:
    """Square pixels, principal point at the image centre, horizontal field of view 50-70 degrees."""
    fov = math.radians(float(random_uniform(generator, (), 50.0, 70.0)))
    focal = size / 2 / math.tan(fov / 2)
    matrix = torch.tensor([[focal, 0.0, size / 2], [0.0, focal, size / 2], [0.0, 0.0, 1.0]])
    return matrix.float().double()


def _sample_room(generator: torch.Generator) -> torch.Tensor:
    """Corners (2, 3) of a room 9-13 m wide and deep, 2.8-3.5 m high, centred above the origin."""
    half_x, height, half_z = random_uniform(generator, (3,), 0.0, 1.0).double() * torch.tensor([2.0, 0.7, 2.0])
    high = torch.stack([half_x + 4.5, height + 2.8, half_z + 4.5])
    return torch.stack([high * torch.tensor([-1.0, 0.0, -1.0]), high])


def _sample_camera(
    generator: torch.Generator, label: int, times: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, _Placement]:
    """Camera path of one motion class: eyes and look-at targets (T, 3), and where objects may go."""
    eye = torch.stack(
        [
            random_uniform(generator, (), -1.0, 1.0),
            random_uniform(generator, (), 1.2, 1.8),
            random_uniform(generator, (), -1.0, 1.0),
        ]
    ).double()
    heading = float(random_uniform(generator, (), 0.0, 2 * math.pi))
    pitch = -math.radians(float(random_uniform(generator, (), 3.0, 15.0)))
    forward = torch.tensor([math.sin(heading), 0.0, math.cos(heading)], dtype=torch.float64)
    right = torch.tensor([-math.cos(heading), 0.0, math.sin(heading)], dtype=torch.float64)
    view = forward * math.cos(pitch) + torch.tensor([0.0, math.sin(pitch), 0.0], dtype=torch.float64)
    path = times[:, None]
    if MOTIONS[label] == "orbit":
        centre = eye + forward * float(random_uniform(generator, (), 2.5, 4.0))
        centre[1] = float(random_uniform(generator, (), 0.5, 1.2))
        sweep = math.radians(float(random_uniform(generator, (), 25.0, 45.0))) * (1 if _coin(generator) else -1)
        eyes = centre + _rotate_y(eye - centre, sweep * times)
        targets = centre.expand_as(eyes)
        placement = _Placement(centre, forward, right, -1.0, 1.0)
    else:
        step = {"left": -right, "right": right, "forward": forward, "backward": -forward}[MOTIONS[label]]
        distance = float(random_uniform(generator, (), 0.8, 1.6))
        eyes = eye + step * distance * path
        targets = eyes + 3.0 * view
        nearest = {"left": 0.5, "right": 0.5, "forward": 1.0, "backward": 0.0}[MOTIONS[label]]
        placement = _Placement(eye + step * distance * nearest, forward, right, 2.0, 3.5)
    eyes = eyes + random_oscillation(generator, (3,), times, 0.04).T
    targets = targets + random_oscillation(generator, (3,), times, 0.08).T
    return eyes, targets, placement


def _sample_objects(
    generator: torch.Generator,
    count: int,
    placement: _Placement,
    times: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Boxes and spheres: kinds (O,), half extents (O, 3), centres (T, O, 3) and yaws (T, O).

    Each drifts linearly (up to 0.6 m per clip) plus a smooth wobble, and spins about the vertical.
    """
    spheres = random_uniform(generator, (count,)) < 0.5
    radii = random_uniform(generator, (count, 1), 0.2, 0.45).expand(count, 3)
    half = torch.where(spheres[:, None], radii, random_uniform(generator, (count, 3), 0.15, 0.45)).double()
    along = random_uniform(generator, (count, 1), placement.near, placement.far).double()
    across = random_uniform(generator, (count, 1), -1.3, 1.3).double()
    start = placement.anchor + placement.forward * along + placement.right * across
    start[:, 1] = half[:, 1] + 0.15 + random_uniform(generator, (count,)).double() * (1.55 - half[:, 1])
    heading = random_uniform(generator, (count,), 0.0, 2 * math.pi).double()
    speed = random_uniform(generator, (count,), 0.0, 0.6).double()
    velocity = torch.stack([speed * torch.sin(heading), torch.zeros_like(speed), speed * torch.cos(heading)], -1)
    wobble = random_oscillation(generator, (count, 3), times, 1.0).permute(2, 0, 1) * torch.tensor([0.3, 0.1, 0.3])
    centres = start + velocity * times[:, None, None] + wobble
    spins = random_uniform(generator, (count,), -1.6, 1.6).double()  # radians per clip
    yaws = random_uniform(generator, (count,), 0.0, 2 * math.pi).double() + spins * times[:, None]
    return spheres, half, centres, yaws


def _fits(
    room: torch.Tensor, world_to_camera: torch.Tensor, spheres: torch.Tensor, half: torch.Tensor, centres: torch.Tensor
) -> bool:
    """Objects inside the room and in front of the camera plane at all times; camera inside the room."""
    eyes = torch.linalg.inv(world_to_camera)[:, :3, 3]
    if not ((eyes > room[0] + 0.1) & (eyes < room[1] - 0.1)).all():
        return False
    if not len(spheres):
        return True
    radius = torch.where(spheres, half[:, 0], half.norm(dim=-1))  # bounding sphere (boxes spin about y)
    extent = torch.stack([radius, half[:, 1], radius], -1)
    inside = ((centres - extent > room[0]) & (centres + extent < room[1])).all()
    depth = _transform(world_to_camera[:, None], centres)[..., 2]  # (T, O)
    return bool(inside and (depth - radius > CLEARANCE).all())


def _sample_textures(
    generator: torch.Generator, num_objects: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per surface: wave vectors (S, WAVES, 3), phases (S, WAVES), colours (S, 3, 3), checker weights (S,).

    Room waves lie in their face (periods 0.8-3.3 m); object waves are solid 3-D waves (periods 0.25-0.7 m).
    Waves 2 and 3 are orthogonal with one frequency, so their product is a checker pattern.
    """
    count = ROOM_FACES + num_objects
    frequencies = torch.cat(
        [
            random_uniform(generator, (ROOM_FACES, WAVES), 0.3, 1.2),
            random_uniform(generator, (num_objects, WAVES), 1.5, 4.0),
        ]
    ).double()
    frequencies[:, 3] = frequencies[:, 2]
    angles = random_uniform(generator, (ROOM_FACES, WAVES), 0.0, math.pi).double()
    angles[:, 3] = angles[:, 2] + math.pi / 2
    axes = torch.arange(ROOM_FACES) // 2
    basis = torch.eye(3, dtype=torch.float64)
    tangent, bitangent = basis[(axes + 1) % 3, None], basis[(axes + 2) % 3, None]
    in_plane = torch.cos(angles)[..., None] * tangent + torch.sin(angles)[..., None] * bitangent
    solid = _normalise(torch.randn((num_objects, WAVES, 3), generator=generator).double())
    solid[:, 3] = _normalise(solid[:, 3] - (solid[:, 3] * solid[:, 2]).sum(-1, keepdim=True) * solid[:, 2])
    waves = torch.cat([in_plane, solid]) * frequencies[..., None]
    phases = random_uniform(generator, (count, WAVES), 0.0, 2 * math.pi).double()
    colours = random_uniform(generator, (count, 3, 3))
    checker = random_uniform(generator, (count,), 0.0, 0.8)
    return waves, phases, colours, checker


def _look_at(eyes: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """World-to-camera matrices (T, 4, 4) of OpenCV cameras at ``eyes`` looking at ``targets``, y up."""
    forward = _normalise(targets - eyes)
    up = torch.tensor([0.0, 1.0, 0.0], dtype=eyes.dtype)
    right = _normalise(torch.linalg.cross(forward, up.expand_as(forward)))
    down = torch.linalg.cross(forward, right)
    rotation = torch.stack([right, down, forward], -2)
    matrix = torch.eye(4, dtype=eyes.dtype).repeat(len(eyes), 1, 1)
    matrix[:, :3, :3] = rotation
    matrix[:, :3, 3] = -(rotation @ eyes[..., None])[..., 0]
    return matrix


# -------------------------------------------------------------------------------------------- rendering


def _render(scene: _Scene, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Video uint8 (T, H, W, 3), z-depth float32 (T, H, W) and surface ids (T, H, W) of every frame."""
    centres = torch.arange(size, dtype=torch.float64) + 0.5
    rows, columns = torch.meshgrid(centres, centres, indexing="ij")
    pixels = torch.stack([columns, rows], -1).reshape(-1, 2)
    offsets = torch.tensor(SUBPIXELS, dtype=torch.float64) - 0.5
    grid = torch.stack(torch.meshgrid(offsets, offsets, indexing="ij"), -1).reshape(-1, 1, 2)
    positions = torch.cat([pixels, (pixels + grid).reshape(-1, 2)])  # centre rays, then the 2 x 2 grid
    num_frames, count = len(scene.world_to_camera), len(pixels)
    step = max(1, RAYS_PER_CHUNK // len(positions))
    video, depth, surface = [], [], []
    for start in range(0, num_frames, step):
        frames = torch.arange(start, min(start + step, num_frames))
        origins, directions = _pixel_rays(scene, frames, positions)
        distance, hit, local = _cast(scene, frames, origins, directions)
        colour = _shade(scene, frames, hit[:, count:], local[:, count:])
        video.append(colour.reshape(len(frames), len(grid), count, 3).mean(1))
        depth.append(distance[:, :count])
        surface.append(hit[:, :count])
    shape = (num_frames, size, size)
    video = (torch.cat(video).clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).reshape(*shape, 3)
    return video, torch.cat(depth).float().reshape(shape), torch.cat(surface).reshape(shape)


def _pixel_rays(scene: _Scene, frames: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Camera centres (F, 3) and world directions (F, N, 3) through pixel positions (N, 2) or (F, N, 2).

    Directions have camera z = 1, so a hit's ray parameter is its z-depth.
    """
    intrinsics = scene.intrinsics
    x = (positions[..., 0] - intrinsics[0, 2]) / intrinsics[0, 0]
    y = (positions[..., 1] - intrinsics[1, 2]) / intrinsics[1, 1]
    camera = torch.stack([x, y, torch.ones_like(x)], -1).expand(len(frames), -1, -1)
    to_world = scene.camera_to_world[frames]
    return to_world[:, :3, 3], torch.einsum("fij,fnj->fni", to_world[:, :3, :3], camera)


def _cast(
    scene: _Scene, frames: torch.Tensor, origins: torch.Tensor, directions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nearest hit of rays ``origins[f] + t directions[f, n]`` at frames (F,) with objects posed at that frame.

    Returns t (F, N), surface id (F, N) and the hit point in the surface's own frame (F, N, 3): world
    coordinates for the room, object coordinates for objects (so textures move with them).
    """
    distance, surface = _hit_room(scene.room, origins[:, None], directions)
    local = origins[:, None] + distance[..., None] * directions
    if not scene.num_objects:
        return distance, surface, local
    yaws = scene.yaws[frames]
    origin = _rotate_y(origins[:, None] - scene.centres[frames], -yaws)[:, None]  # (F, 1, O, 3)
    direction = _rotate_y(directions[:, :, None], -yaws[:, None])  # (F, N, O, 3)
    hits = torch.where(
        scene.spheres, _hit_sphere(origin, direction, scene.half[:, 0]), _hit_box(origin, direction, scene.half)
    )
    nearest, which = hits.min(-1)
    index = which[..., None, None].expand(*which.shape, 1, 3)
    start = origin.expand_as(direction).gather(2, index)[:, :, 0]
    point = start + nearest[..., None] * direction.gather(2, index)[:, :, 0]
    closer = nearest < distance
    return (
        torch.where(closer, nearest, distance),
        torch.where(closer, ROOM_FACES + which, surface),
        torch.where(closer[..., None], point, local),
    )


def _hit_room(room: torch.Tensor, origins: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exit distance and face of rays starting inside the room."""
    wall = torch.where(directions > 0, room[1], room[0])
    distances = torch.where(directions == 0, math.inf, (wall - origins) / directions)
    distance, axis = distances.min(-1)
    rising = directions.gather(-1, axis[..., None])[..., 0] > 0
    return distance, 2 * axis + rising


def _hit_box(origins: torch.Tensor, directions: torch.Tensor, half: torch.Tensor) -> torch.Tensor:
    """Entry distance of rays into axis-aligned boxes ``[-half, half]`` (slab method); inf on a miss."""
    directions = torch.where(directions.abs() < 1e-12, torch.copysign(torch.tensor(1e-12), directions), directions)
    low, high = (-half - origins) / directions, (half - origins) / directions
    entry = torch.minimum(low, high).amax(-1)
    leave = torch.maximum(low, high).amin(-1)
    return torch.where((entry <= leave) & (entry > 0), entry, math.inf)


def _hit_sphere(origins: torch.Tensor, directions: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Entry distance of rays into spheres of ``radius`` at the origin; inf on a miss."""
    a = (directions * directions).sum(-1)
    b = (origins * directions).sum(-1)
    c = (origins * origins).sum(-1) - radius**2
    discriminant = b * b - a * c
    entry = (-b - discriminant.clamp(min=0).sqrt()) / a
    return torch.where((discriminant >= 0) & (entry > 0), entry, math.inf)


def _shade(scene: _Scene, frames: torch.Tensor, surface: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
    """Lambertian colour (F, N, 3) in [0, 1] of hits: texture times ambient plus directional light."""
    lit = (_normals(scene, frames, surface, local) @ scene.light).clamp(min=0.0)
    return _texture(scene, surface, local) * (AMBIENT + (1.0 - AMBIENT) * lit[..., None])


def _texture(scene: _Scene, surface: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
    """Albedo (..., 3): two blended sinusoids and a checker pattern in the surface's own coordinates."""
    phase = (scene.waves[surface] @ local[..., None])[..., 0] * (2 * math.pi) + scene.phases[surface]
    waves = torch.sin(phase).float()
    blend = 0.5 + 0.25 * (waves[..., 0] + waves[..., 1])
    checker = (0.5 + waves[..., 2] * waves[..., 3]).clamp(0.0, 1.0) * scene.checker[surface]
    colours = scene.colours[surface]
    albedo = torch.lerp(colours[..., 0, :], colours[..., 1, :], blend[..., None])
    return torch.lerp(albedo, colours[..., 2, :], checker[..., None])


def _normals(scene: _Scene, frames: torch.Tensor, surface: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
    """Outward world normals (F, N, 3) of surface points given in their own frames (F, N, 3)."""
    axes = torch.arange(ROOM_FACES) // 2
    room = torch.eye(3, dtype=torch.float64)[axes] * (1.0 - 2.0 * (torch.arange(ROOM_FACES) % 2))[:, None]
    normals = room[surface.clamp(max=ROOM_FACES - 1)]
    if not scene.num_objects:
        return normals
    which = (surface - ROOM_FACES).clamp(min=0)
    half = scene.half[which]
    face = (local / half).abs().argmax(-1, keepdim=True)
    box = torch.zeros_like(local).scatter(-1, face, torch.sign(local.gather(-1, face)))
    ball = local / half[..., :1]
    yaws = scene.yaws[frames[:, None], which]
    on_object = _rotate_y(torch.where(scene.spheres[which][..., None], ball, box), yaws)
    return torch.where((surface >= ROOM_FACES)[..., None], on_object, normals)


# ------------------------------------------------------------------------------------ points and boxes


def _sample_points(
    generator: torch.Generator, scene: _Scene, surface: torch.Tensor, count: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Surface ids (P,) and own-frame positions (P, 3) of points visible at their query frame.

    The first half are queried at frame 0 anywhere in the image; the rest at random frames, on objects
    where the frame shows one (so these may start occluded or outside the view).
    """
    num_frames, height, width = surface.shape
    later = count // 2
    frames = torch.cat(
        [torch.zeros(count - later, dtype=torch.long), torch.randint(num_frames, (later,), generator=generator)]
    )
    pixels = [torch.randint(height * width, (count - later,), generator=generator)]
    if later:
        on_object = (surface[frames[count - later :]] >= ROOM_FACES).flatten(1).double() + 1e-9
        pixels.append(torch.multinomial(on_object, 1, generator=generator)[:, 0])
    pixel = torch.cat(pixels)
    corner = torch.stack([pixel % width, pixel // width], -1).double()
    positions = corner + torch.rand((count, 2), generator=generator, dtype=torch.float64)
    origins, directions = _pixel_rays(scene, frames, positions[:, None])
    _, surfaces, local = _cast(scene, frames, origins, directions)
    return surfaces[:, 0], local[:, 0]


def _track_points(scene: _Scene, surface: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
    """World positions (T, P, 3) of points attached to their surfaces."""
    num_frames = len(scene.world_to_camera)
    world = local.expand(num_frames, *local.shape)
    if not scene.num_objects:
        return world.clone()
    which = (surface - ROOM_FACES).clamp(min=0)
    moving = _rotate_y(local, scene.yaws[:, which]) + scene.centres[:, which]
    return torch.where((surface >= ROOM_FACES)[:, None], moving, world)


def _observe_points(
    scene: _Scene, surface: torch.Tensor, local: torch.Tensor, world: torch.Tensor, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel tracks (T, P, 2) and occlusion (T, P) of world points (T, P, 3).

    A point is visible iff it is in front of the camera, inside the image, on a surface facing the camera,
    and the ray through it hits nothing closer than its z-depth (tolerance 1e-3 z + 1e-4 m).
    """
    frames = torch.arange(len(world))
    camera = _transform(scene.world_to_camera[:, None], world)
    depth = camera[..., 2]
    in_front = depth > NEAR
    tracks = _project(scene.intrinsics, camera)
    inside = (tracks >= 0).all(-1) & (tracks < size).all(-1)
    eyes = scene.camera_to_world[:, :3, 3]
    rays = world - eyes[:, None]
    facing = (_normals(scene, frames, surface.expand(len(frames), -1), local.expand_as(world)) * rays).sum(-1) < 0
    nearest, _, _ = _cast(scene, frames, eyes, rays / torch.where(in_front, depth, 1.0)[..., None])
    unblocked = nearest >= depth - (1e-3 * depth + 1e-4)
    return tracks, ~(in_front & inside & facing & unblocked)


def _object_boxes(scene: _Scene, size: int) -> torch.Tensor:
    """Image boxes (O, T, 4) x0, y0, x1, y1 of whole objects (projected corners, sphere silhouettes), clipped."""
    num_frames = len(scene.world_to_camera)
    if not scene.num_objects:
        return torch.zeros(0, num_frames, 4, dtype=torch.float64)
    signs = torch.tensor([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=torch.float64)
    corners = _rotate_y(signs * scene.half[:, None], scene.yaws[..., None]) + scene.centres[:, :, None]
    corners = _project(scene.intrinsics, _transform(scene.world_to_camera[:, None, None], corners))
    cuboids = torch.cat([corners.amin(-2), corners.amax(-2)], -1)
    centres = _transform(scene.world_to_camera[:, None], scene.centres)
    boxes = torch.where(scene.spheres[:, None], _sphere_boxes(scene.intrinsics, centres, scene.half[:, 0]), cuboids)
    return boxes.clamp(0.0, size).transpose(0, 1)


def _sphere_boxes(intrinsics: torch.Tensor, centres: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Exact image boxes (..., 4) of spheres with camera-space centres (..., 3) in front of the camera.

    The silhouette's extreme x solves (X - x Z)^2 = r^2 (1 + x^2): tangent planes through the y axis.
    """
    x, y, z = centres.unbind(-1)
    scale = z**2 - radius**2

    def extremes(lateral: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        spread = radius * (lateral**2 + scale).sqrt()
        return (lateral * z - spread) / scale, (lateral * z + spread) / scale

    (x0, x1), (y0, y1) = extremes(x), extremes(y)
    focal, principal = intrinsics.diagonal()[:2], intrinsics[:2, 2]
    return torch.stack([x0, y0, x1, y1], -1) * focal.repeat(2) + principal.repeat(2)


def _object_visibility(surface: torch.Tensor, num_objects: int) -> torch.Tensor:
    """Whether each object covers at least one pixel centre: (O, T)."""
    ids = torch.arange(num_objects)[:, None, None, None] + ROOM_FACES
    return (surface[None] == ids).flatten(2).any(-1)


# ---------------------------------------------------------------------------------------------- helpers


def _transform(matrices: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply 4 x 4 rigid transforms (..., 4, 4) to points (..., 3)."""
    return (matrices[..., :3, :3] @ points[..., None])[..., 0] + matrices[..., :3, 3]


def _project(intrinsics: torch.Tensor, camera: torch.Tensor) -> torch.Tensor:
    """Pixel (x, y) of camera points (..., 3); points behind the camera use z = NEAR (finite, meaningless)."""
    normalised = camera[..., :2] / camera[..., 2:].clamp(min=NEAR)
    return normalised * intrinsics.diagonal()[:2] + intrinsics[:2, 2]


def _rotate_y(vectors: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate vectors (..., 3) about the y axis by angles (...) (right-handed: z turns towards x)."""
    x, y, z = vectors.unbind(-1)
    cos, sin = torch.cos(angles), torch.sin(angles)
    x, y, z = torch.broadcast_tensors(cos * x + sin * z, y, cos * z - sin * x)
    return torch.stack([x, y, z], -1)


def _normalise(vectors: torch.Tensor) -> torch.Tensor:
    return vectors / vectors.norm(dim=-1, keepdim=True)


def _coin(generator: torch.Generator) -> bool:
    return bool(torch.rand((), generator=generator) < 0.5)
