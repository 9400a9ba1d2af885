"""Lesson 06: where a fact lives in a trained reversal-curse model, and editing it.

Reading order: trace.py (causal tracing: which layer and token recall a fact), rome.py (a
rank-one edit of one feed-forward output matrix), experiment.py (the facts, the prompts and the
measurements `eval.py --task editing` prints).
"""
