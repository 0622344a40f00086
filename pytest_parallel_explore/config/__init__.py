"""From what the user typed to :class:`~..model.settings.Settings`: reading and checking
``variants.yaml``, the options and the ini keys, with an error that names the file, the key
and what was expected; resolved once, in ``pytest_configure``.
"""
