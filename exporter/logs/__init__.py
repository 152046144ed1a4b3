"""Log tailing and parsing: syslog, web server access and error logs -> counters."""
