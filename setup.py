"""uva-plan: planning with a learned video-action world model (UVA)."""

from setuptools import find_packages, setup

setup(
    name="uva-plan",
    version="0.1.0",
    description="Goal-image MPC planning, inverse dynamics and imitation with a Unified Video Action world model",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["world_model", "world_model.*", "planners", "planners.*", "uva_plan", "uva_plan.*"]),
    # The shipped default checkpoints live inside the package (safetensors + JSON, no pickle).
    package_data={"uva_plan": ["checkpoints/*/*.safetensors", "checkpoints/*/*.json"]},
    include_package_data=True,
    install_requires=[
        # A range, not a pin: GPU users keep their own CUDA build. On the 2-core dev machine the README
        # installs torch==2.13.0 (CPU build from local disk) in the same command.
        "torch>=2.2",
        "diffusers>=0.30",
        "accelerate>=0.30",
        "cma>=3.3",
        "scipy>=1.10",
        "numpy>=1.24",
        "rich>=13",
        "click>=8.1",
        "gymnasium>=0.29",
        "gym-pusht>=0.1.5",
        "pygame>=2.5",
        "zarr>=2.16",
        "safetensors>=0.4",
        "imageio>=2.31",
        "imageio-ffmpeg>=0.4",
        "matplotlib>=3.7",
        "roma>=1.4",
    ],
    extras_require={"dev": ["pytest>=7", "hypothesis>=6", "ruff>=0.4"]},
    entry_points={"console_scripts": ["uva-plan=uva_plan.cli:main"]},
)
