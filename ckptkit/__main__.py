"""``python -m ckptkit`` is the ``ckptkit`` command (also under torchrun / accelerate launch)."""

from ckptkit.cli import main

if __name__ == "__main__":
    main()
