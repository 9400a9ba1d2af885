"""Length generalization (lesson 04): a RoPE model read past its training length, and Λ attention.

Reading order: longtext.py (a synthetic language with bounded dependencies and a regime token the
whole text depends on, and passkey prompts), methods.py (every training-free way of reading past
L: the modes), experiment.py (training at length L, then NLL, first-token attention and passkey
retrieval up to 16 L under every mode). Λ itself is core code: the `lambda` pattern in
tinyrev/attention.py and the bounded cache in tinyrev/model.py.
"""
