"""``python -m vlkge`` (and ``torchrun -m vlkge train ...``): the command-line interface."""

from vlkge.cli import main

main()
