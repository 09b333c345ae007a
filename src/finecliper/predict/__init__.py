"""`finecliper predict`: any video -> face tracks -> time windows -> FineCLIPER probabilities.

``pipeline.Predictor`` runs it; ``windows`` plans the windows (pure); ``video`` decodes and tracks;
``explain`` (gradient x input heatmaps), ``overlay`` (annotated video) and ``output`` (JSON, CSV,
terminal table) present the results.
"""
