""""More like this": other catalog items ranked by visual words and colour, not the same instance.

:func:`more_like_this` ranks the catalog by the fused word and colour similarity of the index
(no geometric verification: similar products share print, materials and colours, not a rigid
layout) and leaves out the item itself and the catalog images that verify as the same instance,
so the list recommends other products.
"""

from __future__ import annotations

from typing import Any

from vbow.index import ImageIndex
from vbow.results import Match

__all__ = ["more_like_this"]


def more_like_this(index: ImageIndex, image: Any, top_k: int = 10, *, exclude: str | None = None,
                   drop_same_instance: bool = True, **search_options: Any) -> list[Match]:
    """Rank other catalog items like the one in ``image``.

    Parameters
    ----------
    index : ImageIndex
    image : image input or ImageDescription
        The item (typically its catalog image).
    top_k : int, default 10
        Items returned.
    exclude : str, optional
        The item's own key, left out.
    drop_same_instance : bool, default True
        Also leave out candidates that verify geometrically (the same product photographed
        again), found by one verified search of the shortlist.

    Returns
    -------
    list of Match
        Best first, ranked by the fused word and colour score.
    """
    from vbow.describe.extraction import ImageDescription

    query = image if isinstance(image, ImageDescription) else index.describe(image)
    extra = 1 + (0 if exclude is None else 1)
    ranked = index.search_features(query, top_k + extra + 10, rerank=False, **search_options)
    same: set[str] = set()
    if drop_same_instance:
        # every verified instance, not only a clear winner: they are all dropped
        verified = index.search_features(query, min(top_k + extra, len(index)), rerank=True,
                                         **{**search_options, "verify_all": True})
        same = {m.key for m in verified if m.verified}
    out = [m for m in ranked if m.key != exclude and m.key not in same]
    return out[:top_k]
