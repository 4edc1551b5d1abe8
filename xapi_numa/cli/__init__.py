"""The ``xapi-numa`` command line (:mod:`.main`), one module per command group:
:mod:`.queries`, :mod:`.placing`, :mod:`.moves`, :mod:`.sim`; shared bits in
:mod:`.common`, tables in :mod:`.render`, the seed scenario in :mod:`.demo`."""
