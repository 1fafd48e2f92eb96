try:
    from pixcam.cli import main
except KeyboardInterrupt:  # Ctrl-C during the imports: the usual exit, no traceback
    raise SystemExit(130) from None

raise SystemExit(main())
