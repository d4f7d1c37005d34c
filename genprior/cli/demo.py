"""genprior demo (being written)."""

HELP = "demo (being written)"


def add_arguments(parser):
    pass


def run(args):
    raise NotImplementedError("genprior demo is not implemented yet")
