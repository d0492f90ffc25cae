"""cosmic-ray with one more operator family, ``enarx/…``: disable one check at a time.

cosmic-ray's core operators flip comparisons, booleans and conditions but never delete a statement, and
that is how a security check most often disappears: the ``raise`` of a refusal, the call that verifies or
loads a CA, the attribute assignment that turns hostname checking or client certificates on. Run as
``python scripts/mutation_operators.py <cosmic-ray arguments>`` (scripts/mutants.py does).
"""

from __future__ import annotations

import sys

import parso
from cosmic_ray import plugins
from cosmic_ray.cli import main as cosmic_ray_main
from cosmic_ray.operators.operator import Example, Operator
from parso.python.tree import Keyword


def _pass_for(node: parso.tree.NodeOrLeaf) -> Keyword:
    return Keyword("pass", node.start_pos, prefix=node.get_first_leaf().prefix)


class RemoveRaise(Operator):
    """``raise X`` → ``pass``: the refusal is not raised."""

    def mutation_positions(self, node):
        if node.type == "raise_stmt" or (node.type == "keyword" and node.value == "raise"
                                         and node.parent.type == "simple_stmt"):
            yield node.start_pos, node.end_pos

    def mutate(self, node, index):
        return _pass_for(node)

    @classmethod
    def examples(cls):
        return (Example("if x:\n    raise E('no')\n", "if x:\n    pass\n"),)


class RemoveCallStatement(Operator):
    """``check(x)`` (a call whose result is unused) → ``pass``: the call's effect is gone."""

    def mutation_positions(self, node):
        if node.type in ("atom_expr", "power") and node.parent.type == "simple_stmt" and \
                node.children[-1].type == "trailer" and node.children[-1].children[0].value == "(":
            yield node.start_pos, node.end_pos

    def mutate(self, node, index):
        return _pass_for(node)

    @classmethod
    def examples(cls):
        return (Example("ctx.load_verify_locations(cafile=ca)\n", "pass\n"),)


class RemoveAttributeAssignment(Operator):
    """``obj.attr = value`` → ``pass``: a setting (``verify_mode``, ``check_hostname``…) is not made."""

    def mutation_positions(self, node):
        if node.type == "expr_stmt" and node.parent.type == "simple_stmt" and len(node.children) == 3 and \
                node.children[1].type == "operator" and node.children[1].value == "=" and \
                node.children[0].type in ("atom_expr", "power") and node.children[0].children[-1].type == "trailer" \
                and node.children[0].children[-1].children[0].value == ".":
            yield node.start_pos, node.end_pos

    def mutate(self, node, index):
        return _pass_for(node)

    @classmethod
    def examples(cls):
        return (Example("ctx.verify_mode = ssl.CERT_REQUIRED\n", "pass\n"),)


OPERATORS = {op.__name__: op for op in (RemoveRaise, RemoveCallStatement, RemoveAttributeAssignment)}


class Provider:
    """The ``enarx`` operator provider."""

    def __iter__(self):
        return iter(OPERATORS)

    def __getitem__(self, name):
        return OPERATORS[name]


def install() -> None:
    plugins.OPERATOR_PROVIDERS.setdefault("enarx", Provider())


if __name__ == "__main__":
    install()
    sys.exit(cosmic_ray_main())
