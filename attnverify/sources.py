"""The seed papers the claims come from: one name per source file (errata and quotes cite them).

``context.SEED`` is something else: the random seed of every numeric check.
"""

SOURCE_000 = "000_126cee95456ccd42.txt"  # entmax / regularised attention, REINFORCE and Fisher-Rao readings
SOURCE_002 = "002_45411e362948ee22.txt"  # GOAT (prior attention), edge of stability
SOURCE_003 = "003_e1554db561d6b2f9.txt"  # attention as one-sided entropic OT
SOURCE_004 = "004_830fd89135933577.txt"  # the Fenchel-dual paper
