"""Face-grouping worker: detect faces in a photo library held in SQL tables and group them into persons."""
