"""Training recipes: one module per recipe with a typed config, ``train()`` and ``main()``.

- ``speechedge.recipes.kws_fewshot``: few-shot open-set KWS (BC-ResNet + ProtoNet / D-ProtoNet + LibriWord).
- ``speechedge.recipes.kws``: supervised KWS (BC-ResNet on Speech Commands 12/35 classes).

Configs live in ``recipes/configs/*.toml``.
"""
