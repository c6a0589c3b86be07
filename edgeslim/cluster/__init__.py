"""Running past one machine: the jobs a compress-many run fans out, and the table of their results."""
