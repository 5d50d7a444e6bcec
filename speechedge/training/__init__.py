"""Training library shared by the recipes (torch): the training loop and experiment folders
(:mod:`.loop`), typed configs (:mod:`.config`), augmentation (:mod:`.augment`) and data loading
(:mod:`.kws_data`, :mod:`.asr_data`)."""
