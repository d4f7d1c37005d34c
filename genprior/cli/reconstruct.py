"""genprior reconstruct (being written)."""

HELP = "reconstruct (being written)"


def add_arguments(parser):
    pass


def run(args):
    raise NotImplementedError("genprior reconstruct is not implemented yet")
