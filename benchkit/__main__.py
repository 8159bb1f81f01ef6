"""`python -m benchkit ...`: the CLI, also what `torchrun -m benchkit` launches on each rank."""

from benchkit.cli import main

if __name__ == "__main__":
    main()
