"""The simulated Azure of the demo and the tests: a fake Azure Resource Manager (fakearm) and the demo estate.

It ships in the wheel only so that ``--demo`` works from an installed exporter; the CLI
(``exporter.__main__``) imports it lazily for ``--demo`` and nothing else. The product modules never
import it (tests/test_layout.py checks), while the simulator may import the product's modules.
"""
