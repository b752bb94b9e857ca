"""Issue 21's GPU goals measured in one time-boxed run (``python -m benchmarks.gpu_speed``, run by
``scripts/gpu_speed.sh``): the rows and goals (:mod:`.plan`), running them (:mod:`.run`), ratios, goals met and
the summary (:mod:`.report`). Project machinery: the authors' H200 milliseconds and this project's goals live
here, not in the installed package."""
