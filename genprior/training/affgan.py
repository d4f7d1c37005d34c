"""(being written)"""

HELP = "(being written)"


def add_arguments(parser):
    pass


def main(args):
    raise NotImplementedError("genprior train affgan is not implemented yet")
