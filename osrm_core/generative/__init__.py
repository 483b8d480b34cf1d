"""Generative tasks: prompt -> target with a causal LM and no head (the ``generative`` task kind).

encode: prompts, targets and their token ids; batches: training (target tokens only), feature, choice and
generation batches; text_scores: SQuAD-style normalisation, exact match and token F1; score: label likelihood
and greedy decoding, one score per row; serve: what `osrm predict` and `osrm export` add (records, greedy
generation settings, the prompt-length check).
"""
