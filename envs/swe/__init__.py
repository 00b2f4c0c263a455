"""Software-engineering environment: bug-fix tasks in sandboxed repositories, judged as SWE-bench judges."""
