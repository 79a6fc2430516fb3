from pathlib import Path

import duckdb
import duckdb_extension_httpfs

httpfs = (Path(duckdb_extension_httpfs.__file__).parent / "extensions"
          / f"v{duckdb.__version__}" / "httpfs.duckdb_extension")
con = duckdb.connect()
con.load_extension(str(httpfs))
con.execute("""
    CREATE SECRET stowage (
        TYPE s3,
        KEY_ID 'stowage',
        SECRET 'stowage-dev-secret',
        REGION 'us-east-1',
        ENDPOINT '127.0.0.1:9000',
        URL_STYLE 'path',
        USE_SSL false
    )
""")
