"""The search for the fastest model that passes: the space (space.py), the screening and successive
halving that spend compute where it decides (select.py), and the untrained builds that are timed
(build.py). The DAG step ``search`` (edgeslim/dag/steps/search.py) runs it and binds the chosen
variant into the params of the fixed recipe that follows."""
