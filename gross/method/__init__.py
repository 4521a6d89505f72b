"""The method of the paper (Sec. 3): everything GroSS does to one network.

=========================  ==============================================================
:mod:`.expansion`          Ψ, the group-size expansion of a grouped weight (Sec. 3.1)
:mod:`.grouped`            grouped convolution as a loop and as a block-diagonal weight; costs
:mod:`.btd`                block term decomposition of a convolution (Sec. 3.2; ALS core in
                           :mod:`.btd_core`, tensorly HOOI in :mod:`.btd_hooi`)
:mod:`.layers`             :class:`GroSSConv2d`, the group-size series layer (Sec. 3.3)
:mod:`.decomposition`      model surgery: decompose, set_config, export, the plan of a decomposition
:mod:`.space`              the search space: configurations, neighbours, random samples
:mod:`.macs`               MACs of plain and GroSS networks (the paper's convention)
:mod:`.vbmf`               VBMF rank selection (the baseline of Tables 2 and 3)
:mod:`.deploy`             exported networks to ONNX
=========================  ==============================================================

Imports only :mod:`gross.utils`.
"""
