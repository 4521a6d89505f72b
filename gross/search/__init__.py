"""Searching the space of a GroSS network (Sec. 4-5): evaluation, costs, algorithms, AP.

=========================  ==============================================================
:mod:`.evaluation`         accuracy of many configurations through the prefix tree
:mod:`.costs`              what a configuration costs: MACs or predicted latency; budgets
:mod:`.measure`            timing forward passes (latency tables)
:mod:`.latency`            per-layer latency tables and the additive predictor
:mod:`.algorithms`         exhaustive search (Sec. 5.1), breadth-first search (Sec. 5.1, Alg. 1)
:mod:`.ap`                 average precision of a search against true accuracies (Sec. 5.2)
:mod:`.pareto`             Pareto fronts of evaluated configurations, normalised hypervolume
:mod:`.multiobjective`     NSGA-II (Optuna), random search and the BFS ladder at equal evaluations
=========================  ==============================================================
"""
