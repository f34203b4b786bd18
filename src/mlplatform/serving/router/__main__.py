"""``python -m mlplatform.serving.router``: see :mod:`mlplatform.serving.router`."""

from mlplatform.serving.router.cli import main

if __name__ == "__main__":
    main()
