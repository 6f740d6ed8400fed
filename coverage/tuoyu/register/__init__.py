"""The 备案 register a health committee keeps: filings, deadlines, disclosure, quality.

Pure rules (no file reads except :mod:`tuoyu.register.bulk_import` and the open-data
writer of :mod:`tuoyu.register.disclosure`); the service (``tuoyu_api``) stores and
serves them.

Modules
-------
filings
    A filing (备案) as an immutable record with its life cycle and the facility records
    in force on a date (:func:`~tuoyu.register.filings.facilities_as_of`).
deadlines
    Working days with China's statutory holidays (``chinese-calendar``): the 回执 and
    correction-notice due dates, overdue lists and monthly counts.
disclosure
    The public view of a facility (信息公示) and the open-data export.
quality
    Quality assessments (质量评估) and the latest rating per facility.
bulk_import
    An existing 备案 spreadsheet into registered filings, rejects and audit entries.
"""
