"""Visual vocabularies: k-means and Hamming-space trees, their training and the IDF."""
