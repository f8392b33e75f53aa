"""Procedural shapes: small binary or coloured images of rectangles, discs, triangles,
crosses and rings, generated from a seed (identical on every machine).

Each shape has a random size and position and lies fully inside the image with at least
one background pixel on every side. The label of an image is the index of its kind in
`SHAPE_KINDS`.
"""

from collections.abc import Callable

import numpy as np

from genlab.datamodules.images import (
    ImageDataModule,
    InMemoryImages,
    SeedStream,
    stream_rng,
    transform_images,
)

MIN_IMAGE_SIZE = 12

Masks = np.ndarray  # bool [n, S, S]


def pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column coordinates shaped [1,S,1] and [1,1,S], to broadcast against [n,1,1]."""
    coords = np.arange(size)
    return coords[None, :, None], coords[None, None, :]


def column(values: np.ndarray) -> np.ndarray:
    """Per-shape parameters [n] shaped [n,1,1] to broadcast over the pixel grid."""
    return values[:, None, None]


def draw_centers(rng: np.random.Generator, extents: np.ndarray, size: int) -> np.ndarray:
    """Integer centres [n] such that centre +- extent stays within 1..size-2."""
    return rng.integers(extents + 1, size - 2 - extents, endpoint=True)


def draw_rectangles(rng: np.random.Generator, count: int, size: int) -> Masks:
    """Filled axis-aligned rectangles with sides between size/4 and size-2."""
    rows, cols = pixel_grid(size)
    heights, widths = rng.integers(max(3, size // 4), size - 2, (2, count), endpoint=True)
    tops = rng.integers(1, size - 1 - heights, endpoint=True)
    lefts = rng.integers(1, size - 1 - widths, endpoint=True)
    inside_rows = (rows >= column(tops)) & (rows < column(tops + heights))
    inside_cols = (cols >= column(lefts)) & (cols < column(lefts + widths))
    return inside_rows & inside_cols


def disc_masks(
    rows: np.ndarray,
    cols: np.ndarray,
    center_rows: np.ndarray,
    center_cols: np.ndarray,
    radii: np.ndarray,
) -> Masks:
    """Pixels within radius r of integer centres; r^2 + r (not r^2) gives round edges."""
    squared_distance = (rows - column(center_rows)) ** 2 + (cols - column(center_cols)) ** 2
    return squared_distance <= column(radii * radii + radii)


def draw_discs(rng: np.random.Generator, count: int, size: int) -> Masks:
    """Filled circles with radius between 3 and the largest that fits."""
    rows, cols = pixel_grid(size)
    radii = rng.integers(3, (size - 3) // 2, count, endpoint=True)
    return disc_masks(
        rows, cols, draw_centers(rng, radii, size), draw_centers(rng, radii, size), radii
    )


def draw_rings(rng: np.random.Generator, count: int, size: int) -> Masks:
    """Circle outlines two pixels thick, with an empty hole of radius 2 or more."""
    rows, cols = pixel_grid(size)
    radii = rng.integers(max(4, size // 4), (size - 3) // 2, count, endpoint=True)
    center_rows, center_cols = draw_centers(rng, radii, size), draw_centers(rng, radii, size)
    outer = disc_masks(rows, cols, center_rows, center_cols, radii)
    hole = disc_masks(rows, cols, center_rows, center_cols, radii - 2)
    return outer & ~hole


def draw_triangles(rng: np.random.Generator, count: int, size: int) -> Masks:
    """Isosceles triangles pointing up, down, left or right.

    The base is 2h+1 pixels wide for a half-width h, the height between h+1 and 2h+1,
    and each row widens linearly from the apex to the base.
    """
    rows, cols = pixel_grid(size)
    half_bases = rng.integers(max(3, size // 5), (size - 3) // 2, count, endpoint=True)
    heights = np.minimum(half_bases + 1 + rng.integers(0, half_bases, endpoint=True), size - 2)
    tops = rng.integers(1, size - 1 - heights, endpoint=True)
    centers = draw_centers(rng, half_bases, size)
    depth = rows - column(tops)
    half_widths = np.rint(depth * column(half_bases) / column(heights - 1))
    within_height = (depth >= 0) & (depth < column(heights))
    within_width = np.abs(cols - column(centers)) <= half_widths
    return rotate_quarter_turns(within_height & within_width, rng.integers(0, 4, count))


def rotate_quarter_turns(masks: Masks, turns: np.ndarray) -> Masks:
    """Rotate each square mask by its number of quarter turns (margins stay margins)."""
    rotated = masks.copy()
    for turn in range(1, 4):
        chosen = turns == turn
        rotated[chosen] = np.rot90(masks[chosen], turn, axes=(1, 2))
    return rotated


def draw_crosses(rng: np.random.Generator, count: int, size: int) -> Masks:
    """Plus signs: two perpendicular bars of equal length, 3 or (when long) 5 pixels thick."""
    rows, cols = pixel_grid(size)
    arms = rng.integers(max(3, size // 5), (size - 3) // 2, count, endpoint=True)
    half_thickness = 1 + (arms >= 6) * rng.integers(0, 1, count, endpoint=True)
    row_offsets = np.abs(rows - column(draw_centers(rng, arms, size)))
    col_offsets = np.abs(cols - column(draw_centers(rng, arms, size)))
    arms, half_thickness = column(arms), column(half_thickness)
    horizontal = (row_offsets <= half_thickness) & (col_offsets <= arms)
    vertical = (col_offsets <= half_thickness) & (row_offsets <= arms)
    return horizontal | vertical


SHAPE_DRAWERS: dict[str, Callable[[np.random.Generator, int, int], Masks]] = {
    "rectangle": draw_rectangles,
    "disc": draw_discs,
    "triangle": draw_triangles,
    "cross": draw_crosses,
    "ring": draw_rings,
}
SHAPE_KINDS = tuple(SHAPE_DRAWERS)


def check_image_size(size: int) -> None:
    """Reject images too small for the smallest shapes with their one-pixel margin."""
    if size < MIN_IMAGE_SIZE:
        raise ValueError(f"image_size must be >= {MIN_IMAGE_SIZE} to fit every shape, got {size}")


def generate_shapes(
    count: int, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """`count` random shapes as grayscale images [N,S,S,1] (0 or 255) and kind labels [N]."""
    check_image_size(size)
    labels = rng.integers(0, len(SHAPE_KINDS), count)
    masks = np.zeros((count, size, size), dtype=bool)
    for kind, draw in enumerate(SHAPE_DRAWERS.values()):
        chosen = np.flatnonzero(labels == kind)
        masks[chosen] = draw(rng, len(chosen), size)
    return (masks * np.uint8(255))[..., None], labels


class ShapesDataModule(ImageDataModule):
    """Procedural geometric shapes, binary (K = 2, C = 1) or coloured (K = 4, C = 3).

    Coloured shapes have a random foreground and a different random background colour per
    image, 2 bits per channel. Train and test come from separate random streams of `seed`;
    labels are the shape kinds (indices into `SHAPE_KINDS`).

    Args:
        colored: Paint each image with random foreground/background colours.
        image_size: Height and width of the square images (at least 12).
        num_train: Images generated for training (validation is carved out of these).
        num_test: Images generated for testing.
    """

    def __init__(
        self,
        colored: bool = False,
        image_size: int = 20,
        num_train: int = 10_000,
        num_test: int = 2_000,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        check_image_size(image_size)
        self.colored = colored
        self.image_size = image_size
        self.num_train = num_train
        self.num_test = num_test

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3 if self.colored else 1, self.image_size, self.image_size)

    @property
    def num_levels(self) -> int:
        return 4 if self.colored else 2

    @property
    def name(self) -> str:
        return "colored_shapes" if self.colored else "shapes"

    def load_splits(self) -> tuple[InMemoryImages, InMemoryImages]:
        return (
            self.generate_split(self.num_train, SeedStream.TRAIN_IMAGES, SeedStream.TRAIN_COLORS),
            self.generate_split(self.num_test, SeedStream.TEST_IMAGES, SeedStream.TEST_COLORS),
        )

    def generate_split(
        self, count: int, image_stream: SeedStream, color_stream: SeedStream
    ) -> InMemoryImages:
        """One split: shapes from `image_stream`, colours (if any) from `color_stream`."""
        seed = self.hparams.seed
        raw, labels = generate_shapes(count, self.image_size, stream_rng(seed, image_stream))
        images = transform_images(raw, self.num_levels, self.colored, [seed, int(color_stream)])
        return InMemoryImages.from_numpy(images, labels)
