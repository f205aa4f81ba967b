"""Research outputs: what the people who use the archive read (dataframes, SQL, one look at the day).

Data flow (one KST day D, read-only on the archive; nothing here touches the bus)::

    archive files of D  --day.day_groups-->  Group(table, provider, market, files)
      --tables.batches (trades.trade_rows cuts raw/ frames with the KIS parser's field table)-->
          typed Arrow record batches (KST timestamps, int64 prices/volumes, record_id kept)
      --export-->  <research>/parquet/D/{table}_{provider}_{market}.parquet + manifest.json
                   (zstd; rows checked against the archive's own count; whole day or nothing)
      --etl----->  PostgreSQL: versioned schema, one partition per day and table, COPY into
                   staging tables, swapped in by one transaction (a killed load leaves nothing)
    archive files of D  --daystats.DayStats-->  charts (matplotlib, Agg)  --report-->
                   <research>/reports/D/report.html (self-contained) + *.png + summary.txt
                   -> the monitor sends summary + one chart to Telegram once, after the close

Modules: ``errors`` (the named failures), ``day`` (which files, strict line reading), ``trades``
(raw frames -> named typed fields), ``tables`` (schemas, row builders, the way back), ``export``,
``pgschema`` (versioned DDL), ``etl``, ``daystats`` (the day's figures), ``charts``, ``report``,
``cli`` (``observer export|etl|report``). Nothing here imports another ``sinks`` wing.
"""
