"""The scheduler container's process: ``python -m services.scheduler``, the same as the
``tickonce scheduler`` command."""

from tickonce._cli import main

if __name__ == "__main__":
    main(["scheduler"])
