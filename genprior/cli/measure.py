"""genprior measure (being written)."""

HELP = "measure (being written)"


def add_arguments(parser):
    pass


def run(args):
    raise NotImplementedError("genprior measure is not implemented yet")
