"""File I/O at the edges: loaders of input layers and atomic writers of outputs."""
