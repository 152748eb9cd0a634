"""The architecture builder: palette, canvas, inspector, problems list and totals bar.

Every view here reads the ``ProjectDocument`` and changes it only through undo commands
(``commands``), pushed by the ``ArchitectureEditor``.
"""
