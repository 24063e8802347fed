"""Entry point of the face-grouping worker. Run `python main.py --help`."""
import sys

from app.cli import main

if __name__ == "__main__":
    sys.exit(main())
