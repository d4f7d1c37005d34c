"""genprior sample (being written)."""

HELP = "sample (being written)"


def add_arguments(parser):
    pass


def run(args):
    raise NotImplementedError("genprior sample is not implemented yet")
