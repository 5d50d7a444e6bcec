"""Training recipes: one module per recipe with a typed config, ``train()`` and ``main()``.

- ``speechedge.recipes.kws_fewshot``: few-shot open-set KWS (BC-ResNet + ProtoNet / D-ProtoNet + LibriWord).

Configs live in ``recipes/configs/*.toml``.
"""
