"""``semantic-depth fleet``: validate a model on many recorded drives, on Ray.

``drives`` finds the bags and names their output folders (and splits long drives into time windows), ``tasks`` is
the work of one Ray task (infer-bag's own run of a drive or a window, the merge of a chunked drive), ``merge``
joins a drive's chunks, ``results`` records finished drives, ``report`` writes the fleet report and ``runner``
schedules it all on Ray (the only module that imports it).
"""
