"""The ministry portal: a server-rendered web application over the dcops library, for ministries and staff."""
