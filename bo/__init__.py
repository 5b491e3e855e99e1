"""Bayesian optimisation with PFN and BNN surrogates (search spaces, acquisition, loop).

Nothing here yet: the foundation (`priors`, `pfn`) comes first; see the project's issues.
"""
