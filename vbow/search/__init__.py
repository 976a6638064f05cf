"""The search core: postings, term weighting, colour fusion, the catalog. numpy only, never OpenCV."""
