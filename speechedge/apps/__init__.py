"""Applications on top of the library: the ``speechedge`` CLI (:mod:`.cli`), the quickstart pipelines
(:mod:`.quickstart`), benchmarks (:mod:`.bench`), long-form keyword-spotting evaluation (:mod:`.longform`)
and the CTC forced-alignment tool (:mod:`.align`). Nothing below this layer imports it."""
