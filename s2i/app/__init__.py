"""The user interfaces: the command line (:mod:`s2i.app.cli`) and the interactive explorer
(:mod:`s2i.app.explore`, :mod:`s2i.app.widget`). They call :mod:`s2i.method`, never rebuild it."""
