from pixcam.interrupt import keep_ctrl_c

keep_ctrl_c()  # before the imports, where an early Ctrl-C can be swallowed

try:
    from pixcam.cli import main
except KeyboardInterrupt:  # Ctrl-C during the imports: the usual exit, no traceback
    raise SystemExit(130) from None

raise SystemExit(main())
