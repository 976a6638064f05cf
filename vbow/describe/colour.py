"""Per-image colour signatures: centre-weighted HSV histograms compared by Bhattacharyya.

Chromatic pixels (saturation above ``grey_saturation``) fall in a joint hue × saturation × value
grid; near-grey pixels, whose hue is meaningless, fall in ``grey_bins`` bins by value only. With
``soft_binning`` a pixel's mass is shared between the two nearest bins along each axis (linear
interpolation, hue wrapping round), so a small shift of hue or brightness moves the signature a
little instead of flipping a bin. It is computed from one hard histogram on a grid four times finer
per axis, pooled onto the bins by fixed interpolation weights: the cost of one ``bincount``. Pixels
are weighted by a Gaussian centred on the image (products sit near the middle of both catalog
shots and shopper photos; the borders are mostly background). The histogram ``p`` is stored as
``sqrt(p)``, so the Bhattacharyya coefficient ``sum(sqrt(p * q))`` between two images is a plain
dot product, in ``[0, 1]``.

With ``bands`` the signature also says where the colours are, up and down the product: it
appends one histogram per horizontal band, each a sqrt histogram scaled so that the bands carry
``band_share`` of the signature's unit norm. The similarity is then
``(1 - band_share) * global + band_share * mean over bands``, each a Bhattacharyya coefficient.
Bands are placed on the product's own vertical extent (the mean and standard deviation of the
row position under the pixel weights, so after the backdrop is suppressed), not on the frame,
and a pixel's weight is shared linearly between the two nearest band centres. Upright products
keep their vertical layout under a turn of the product or of the camera about the vertical
axis, where the left-right layout changes completely.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from vbow.errors import InvalidInputError

__all__ = ["ColourHistogram", "bhattacharyya"]

_MIN_PIXEL_WEIGHT = 0.02
#: fine cells per bin along each axis for soft binning
_FINE = 4


@lru_cache(maxsize=32)
def _pooling(n_bins: int, circular: bool) -> np.ndarray:
    """``(n_bins * _FINE, n_bins) float64`` linear-interpolation weights of fine cells on bins.

    A fine cell centred at ``x`` in ``[0, 1)`` gives ``1 - a`` of its mass to bin ``floor(f)`` and
    ``a`` to the next, where ``f = x * n_bins - 0.5`` and ``a = f - floor(f)`` (bin centres sit at
    ``(i + 0.5) / n_bins``). Past the outer centres the mass wraps round (hue) or stays in the
    outer bin.
    """
    n_fine = n_bins * _FINE
    f = (np.arange(n_fine) + 0.5) / n_fine * n_bins - 0.5
    lo = np.floor(f).astype(np.int64)
    a = f - lo
    hi = lo + 1
    if circular:
        lo, hi = lo % n_bins, hi % n_bins
    else:
        lo, hi = np.clip(lo, 0, n_bins - 1), np.clip(hi, 0, n_bins - 1)
    out = np.zeros((n_fine, n_bins))
    rows = np.arange(n_fine)
    np.add.at(out, (rows, lo), 1.0 - a)
    np.add.at(out, (rows, hi), a)
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class ColourHistogram:
    """HSV colour signature settings.

    Parameters
    ----------
    hue_bins, saturation_bins, value_bins : int
        Grid of chromatic bins.
    grey_bins : int
        Value bins for near-grey pixels.
    grey_saturation : float
        Saturation (0..1) below which a pixel counts as grey.
    centre_sigma : float
        Standard deviation of the centre weighting, as a fraction of each image side; 0 weighs
        every pixel equally.
    work_side : int
        Images are first downscaled so the longer side is at most this (speed, and noise).
    border_width : float
        Width of the image frame, as a fraction of the shorter side, whose colours are taken
        as the background.
    border_suppression : float
        Background suppression exponent ``g``: a pixel whose bin holds the fraction ``b`` of
        the frame's pixels is weighted by ``(1 - b) ** g``. A uniform backdrop (a catalog shot
        on white, a turntable on black) falls in one or two bins and nearly vanishes from the
        signature, so two shots of one product compare by the product; a cluttered frame
        spreads over many bins and changes little. Weights never drop below 0.02, so an image
        that is all one colour keeps its signature. 0 disables it. The backdrop is estimated
        on the (hard) bins.
    soft_binning : bool
        Share each pixel between neighbouring bins (see the module doc); ``False`` counts it in
        one bin.
    bands : int
        Horizontal bands described on top of the whole image (see the module doc); 0 (or 1,
        which adds nothing) keeps the global histogram alone.
    band_share : float
        Share of the similarity, in ``[0, 1]``, that the bands carry when ``bands >= 2``.
    """

    hue_bins: int = 24
    saturation_bins: int = 3
    value_bins: int = 3
    grey_bins: int = 8
    grey_saturation: float = 0.15
    centre_sigma: float = 0.35
    work_side: int = 160
    border_width: float = 0.06
    border_suppression: float = 1.0
    soft_binning: bool = True
    bands: int = 0
    band_share: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.bands, bool) or not isinstance(self.bands, int) or self.bands < 0:
            raise InvalidInputError(f"bands must be an integer >= 0; got {self.bands!r}")
        if not 0.0 <= float(self.band_share) <= 1.0:
            raise InvalidInputError(f"band_share must be in [0, 1]; got {self.band_share!r}")

    @property
    def histogram_bins(self) -> int:
        """Bins of one histogram (the whole image's, or one band's)."""
        return self.hue_bins * self.saturation_bins * self.value_bins + self.grey_bins

    @property
    def n_bands(self) -> int:
        """Band histograms in the signature (``bands``, or 0 when it is below 2)."""
        return self.bands if self.bands >= 2 else 0

    @property
    def n_bins(self) -> int:
        """Length of the signature: the whole image's histogram, then one per band."""
        return self.histogram_bins * (1 + self.n_bands)

    def get_params(self) -> dict:
        return dict(self.__dict__)

    def compute(self, image: np.ndarray) -> np.ndarray:
        """Colour signature of one image.

        Parameters
        ----------
        image : np.ndarray
            ``(h, w, 3) uint8`` BGR.

        Returns
        -------
        np.ndarray
            ``(n_bins,) float32`` square roots of the weighted histogram's probabilities (unit L2
            norm); with bands, the band histograms follow, scaled as the module doc says.
        """
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or \
                image.dtype != np.uint8:
            got = f"{image.shape} {image.dtype}" if isinstance(image, np.ndarray) else type(image).__name__
            raise InvalidInputError(f"colour histogram needs a (h, w, 3) uint8 BGR image; got {got}")
        h, w = image.shape[:2]
        scale = self.work_side / max(h, w)
        if scale < 1:
            image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                               interpolation=cv2.INTER_AREA)
            h, w = image.shape[:2]
        hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV_FULL).reshape(-1, 3).astype(np.int32)
        hue, sat, val = hsv[:, 0], hsv[:, 1], hsv[:, 2]
        chroma_bin = ((hue * self.hue_bins >> 8) * self.saturation_bins
                      + (sat * self.saturation_bins >> 8)) * self.value_bins \
            + (val * self.value_bins >> 8)
        grey_bin = self.hue_bins * self.saturation_bins * self.value_bins + (val * self.grey_bins >> 8)
        bins = np.where(sat < self.grey_saturation * 256, grey_bin, chroma_bin)
        if self.centre_sigma > 0:
            ys = np.exp(-0.5 * ((np.arange(h) + 0.5) / h - 0.5) ** 2 / self.centre_sigma ** 2)
            xs = np.exp(-0.5 * ((np.arange(w) + 0.5) / w - 0.5) ** 2 / self.centre_sigma ** 2)
            weights = np.outer(ys, xs).reshape(-1)
        else:
            weights = np.ones(h * w)
        if self.border_suppression > 0:
            weights = weights * self._background_weights(bins.reshape(h, w))
        fine = self._fine_bins(hue, sat, val) if self.soft_binning else None

        def sqrt_histogram(pixel_weights: np.ndarray) -> np.ndarray:
            if fine is not None:
                hist = self._pool(np.bincount(fine, weights=pixel_weights,
                                              minlength=self._n_fine))
            else:
                hist = np.bincount(bins, weights=pixel_weights,
                                   minlength=self.histogram_bins).astype(np.float64)
            return np.sqrt(hist / max(hist.sum(), 1e-12))

        whole = sqrt_histogram(weights)
        if not self.n_bands:
            return whole.astype(np.float32)
        share = float(self.band_share)
        parts = [whole * np.sqrt(1.0 - share)]
        parts += [sqrt_histogram(weights * m) * np.sqrt(share / self.n_bands)
                  for m in self._band_memberships(weights, h, w)]
        return np.concatenate(parts).astype(np.float32)

    def _band_memberships(self, weights: np.ndarray, h: int, w: int) -> list[np.ndarray]:
        """``n_bands`` arrays of ``(h * w,)`` per-pixel band memberships (summing to 1).

        Band centres sit at ``-1 .. 1`` standard deviations of the weighted row position
        around its weighted mean; a pixel is shared linearly between the two nearest centres,
        and pixels beyond the outer centres belong to the outer bands.
        """
        rows = (np.arange(h, dtype=np.float64) + 0.5) / h
        row_mass = weights.reshape(h, w).sum(axis=1)
        total = max(float(row_mass.sum()), 1e-12)
        mean = float(row_mass @ rows) / total
        sd = np.sqrt(float(row_mass @ (rows - mean) ** 2) / total) + 1e-6
        # position of each row in band units: 0 at the top band's centre, n - 1 at the bottom's
        at = np.clip(((rows - mean) / sd + 1.0) * (self.n_bands - 1) / 2.0, 0, self.n_bands - 1)
        lower = np.minimum(np.floor(at).astype(np.int64), self.n_bands - 2)
        frac = at - lower
        out = []
        for b in range(self.n_bands):
            by_row = np.where(lower == b, 1.0 - frac, 0.0) + np.where(lower + 1 == b, frac, 0.0)
            out.append(np.repeat(by_row, w))
        return out

    @property
    def _n_fine(self) -> int:
        return (self.hue_bins * self.saturation_bins * self.value_bins * _FINE ** 3
                + self.grey_bins * _FINE)

    def _fine_bins(self, hue: np.ndarray, sat: np.ndarray, val: np.ndarray) -> np.ndarray:
        """``(p,)`` cell of each ``(p,) int32`` HSV pixel on the grid ``_FINE`` times finer."""
        nh, ns, nv, ng = (self.hue_bins * _FINE, self.saturation_bins * _FINE,
                          self.value_bins * _FINE, self.grey_bins * _FINE)
        chroma = ((hue * nh >> 8) * ns + (sat * ns >> 8)) * nv + (val * nv >> 8)
        grey = nh * ns * nv + (val * ng >> 8)
        return np.where(sat < self.grey_saturation * 256, grey, chroma)

    def _pool(self, fine: np.ndarray) -> np.ndarray:
        """The fine grid's ``(_n_fine,)`` histogram pooled on the bins by interpolation."""
        nh, ns, nv = self.hue_bins * _FINE, self.saturation_bins * _FINE, self.value_bins * _FINE
        cube = fine[:nh * ns * nv].reshape(nh, ns, nv)
        cube = np.tensordot(_pooling(self.hue_bins, True), cube, axes=([0], [0]))
        cube = np.tensordot(cube, _pooling(self.saturation_bins, False), axes=([1], [0]))
        cube = np.tensordot(cube, _pooling(self.value_bins, False), axes=([1], [0]))
        grey_hist = fine[nh * ns * nv:] @ _pooling(self.grey_bins, False)
        return np.concatenate([cube.reshape(-1), grey_hist])

    def _background_weights(self, bins: np.ndarray) -> np.ndarray:
        """``(h * w,) float64`` per-pixel weights ``(1 - b[bin]) ** g`` (see the class doc)."""
        h, w = bins.shape
        m = max(1, round(self.border_width * min(h, w)))
        frame = np.concatenate([bins[:m].ravel(), bins[-m:].ravel(),
                                bins[m:-m, :m].ravel(), bins[m:-m, -m:].ravel()])
        share = np.bincount(frame, minlength=self.histogram_bins) / max(frame.size, 1)
        weights = (1.0 - share[bins.reshape(-1)]) ** self.border_suppression
        # a floor keeps an image that is all backdrop (or all one colour) describable
        return np.maximum(weights, _MIN_PIXEL_WEIGHT)


def bhattacharyya(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bhattacharyya coefficients between sqrt-histograms: ``(n, c) x (c,)`` → ``(n,) float32``."""
    return (np.asarray(a, np.float32) @ np.asarray(b, np.float32)).astype(np.float32)
