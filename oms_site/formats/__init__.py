"""Display formats that replace the locale's (FORMAT_MODULE_PATH): the admin shows
times as the trader pages do, 24-hour UTC."""
