"""genprior evaluate (being written)."""

HELP = "evaluate (being written)"


def add_arguments(parser):
    pass


def run(args):
    raise NotImplementedError("genprior evaluate is not implemented yet")
