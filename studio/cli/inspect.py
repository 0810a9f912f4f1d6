"""`studio inspect` (being written)."""


def add_arguments(parser):
    pass


def run(args):
    print("studio inspect is not available yet")
    return 1
