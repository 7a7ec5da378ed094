return tk.pipeline()
