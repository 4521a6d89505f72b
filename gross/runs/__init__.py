"""Running experiments: profiles and settings, stored artefacts, jobs on executors.

=========================  ==============================================================
:mod:`.config`             profiles (``configs/*.toml``), settings read by use, reductions
:mod:`.store`              artefacts in ``runs/<profile>/`` with fingerprints; the run lock
:mod:`.jobs`               jobs and executors (serial, local pool, submitit / Slurm)
:mod:`.btd_jobs`           a decomposition as one BTD job per (layer, group size)
=========================  ==============================================================
"""
